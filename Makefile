# Two entry points for a fresh machine: `make run` and `make test`.
# Both create (once) and reuse a virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast typecheck lint install

# uv installs the same pins as pip, several packages at a time (torch's CUDA build alone is
# about 3 GB), and compiles their bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set,
# nothing else would, and every process would compile torch and Ray again as it starts.
# Where uv cannot reach its index, pip installs them instead.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]' \
	  || $(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/alt serve

# Everything CI runs: the type check, then the whole suite: all but the Ray files on two
# workers (pytest-xdist, a file per worker at a time), then the Ray files on their own (a
# cluster starved of CPU misses its deadlines). The type check runs beside the first run
# (whose tests leave a core idle at times, waiting on real-time streams and servers); its
# report follows the tests', and either failing fails.
test: $(STAMP)
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & typecheck=$$!; \
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not ray"; tests=$$?; \
	wait $$typecheck; checked=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 -a $$checked -eq 0
	$(BIN)/python -m pytest -m ray

# Day to day: everything but the slow tier (real servers, training runs, Ray, Docker,
# the browser), in about four minutes on two cores.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
