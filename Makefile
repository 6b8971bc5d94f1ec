# saekit: `make demo` sets up and runs the main job; `make test` lints and type-checks,
# then runs every test (skip reasons shown).
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: setup demo demo-quick test test-fast lab lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m saekit.demo --out $(OUT)

demo-quick: setup
	$(PY) -m saekit.demo --quick --out $(OUT)

test: setup lint
	$(PY) -m pytest -q -rs -p no:cacheprovider --durations=15 --nbmake --nbmake-timeout=1800 \
		--ignore-glob='tests/browser/*.ipynb' tests notebooks

test-fast: setup
	$(PY) -m pytest -q -rs -x -m "not slow and not browser" tests

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# ruff on the code, tests and benchmarks; mypy on saekit/ (settings in pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check saekit tests benchmarks
	$(PY) -m mypy

bench: setup
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OUT)
