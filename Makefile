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

# Everything CI runs: the type check, the Ray files, and all the other files on two
# workers (pytest-xdist, a file per worker at a time), the three at once. The type check
# and the Ray run leave the cores idle much of the time (a Ray cluster waits on its health
# checks and fault windows); the workers run at nice 5, so that a cluster's health checks
# and deadlines get the CPU first. Their reports follow the workers', and any failing fails.
test: $(STAMP)
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & typecheck=$$!; \
	TEST_PORT_SLOT=7 $(BIN)/python -m pytest -m ray -p no:cacheprovider \
	  --basetemp=$(VENV)/ray-tests > $(VENV)/ray.log 2>&1 & clustered=$$!; \
	nice -n 5 $(BIN)/python -m pytest -n 2 --dist loadfile -m "not ray"; tests=$$?; \
	wait $$clustered; ray=$$?; echo "The Ray files:"; cat $(VENV)/ray.log; \
	wait $$typecheck; checked=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 -a $$ray -eq 0 -a $$checked -eq 0

# Day to day: everything but the slow tier (real servers, training runs, Ray, Docker,
# the browser), in about four minutes on two cores.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
