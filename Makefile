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

# Everything CI runs, in three pytest runs, each given its own files (tests/groups.py).
# The files of pure computation (compiling, training) and the type check run from the
# start at the lowest CPU priority (nice 19), on the CPU the others leave idle: they have
# no deadline to miss. Beside them, every other file but the Ray ones on three workers
# (pytest-xdist, a file per worker at a time, the longest first; many of these tests wait
# on real time, a stream played or a client's timeout, so a third worker fills the
# waits), then the Ray files on their own (a cluster starved of CPU misses its deadlines;
# at nice 19 a neighbour gets ~1.5% of a contended core): their run starts with the
# others, collects, and waits for the first run's end (ALT_TESTS_AFTER,
# tests/conftest.py). Their report and the two background ones follow; any failure fails.
#
# Torch's OpenMP threads spin for a while before they sleep: with more threads than cores,
# as the suite runs them, the spinning took more than half the CPU (three `build-default
# --quick` side by side: 416 CPU-s and 211 s by default, 181 CPU-s and 93 s passive).
test test-fast: export OMP_WAIT_POLICY = PASSIVE

RAY_TESTS = $(shell $(PYTHON) tests/groups.py ray)
BACKGROUND_TESTS = $(shell $(PYTHON) tests/groups.py background)
FIRST_TESTS = $(shell $(PYTHON) tests/groups.py first)

test: $(STAMP)
	@rm -f $(VENV)/first-run.done; \
	nice -n 19 $(BIN)/mypy > $(VENV)/mypy.log 2>&1 & typecheck=$$!; \
	nice -n 19 $(BIN)/python -m pytest $(BACKGROUND_TESTS) \
	  > $(VENV)/background.log 2>&1 & background=$$!; \
	ALT_TESTS_AFTER=$(VENV)/first-run.done $(BIN)/python -m pytest $(RAY_TESTS) \
	  > $(VENV)/ray.log 2>&1 & ray=$$!; \
	$(BIN)/python -m pytest -n 3 --dist loadfile $(FIRST_TESTS); tests=$$?; \
	touch $(VENV)/first-run.done; \
	wait $$ray; clustered=$$?; echo "ray:"; cat $(VENV)/ray.log; \
	wait $$background; computed=$$?; echo "background:"; cat $(VENV)/background.log; \
	wait $$typecheck; checked=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 -a $$clustered -eq 0 -a $$computed -eq 0 -a $$checked -eq 0

# Day to day: everything but the slow tier (real servers, training runs, Ray, Docker,
# the browser), in about four minutes on two cores.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

typecheck: $(STAMP)
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
