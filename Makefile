# saekit: `make demo` sets up and runs the main job; `make test` runs every test.
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

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 --nbmake --nbmake-timeout=1800 \
		--ignore-glob='tests/browser/*.ipynb' tests notebooks

test-fast: setup
	$(PY) -m pytest -q -x -m "not slow and not browser" tests

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

lint: setup
	$(VENV)/bin/ruff check saekit tests benchmarks

bench: setup
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OUT)
