# SAU developer and CI entry points.  CI runs `bash .ci/run`, i.e. `make test`.
SHELL := /bin/bash

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv run system-deps test faults lint clean distclean

## venv: create .venv (Python >= 3.11, chosen by scripts/find-python.sh) and install the project with its test extras
venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	    py=$$(bash scripts/find-python.sh) || exit 1; \
	    echo "creating $(VENV) with $$py"; \
	    $$py -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: development server on http://127.0.0.1:5000 with demo data
run: venv
	export SAU_ENV=development; \
	$(VENV)/bin/sau db upgrade && \
	$(VENV)/bin/sau load-demo && \
	exec $(VENV)/bin/sau serve --host 127.0.0.1 --port 5000

## system-deps: PostgreSQL, Chromium, fonts, Node.js/npm, node_modules (installs only what is missing)
system-deps:
	bash scripts/ensure-system-deps.sh

## test: whole suite on SQLite, then the DB-backed tests on a throwaway PostgreSQL; both must pass
test: venv system-deps
	@rc_sqlite=0; rc_pg=0; \
	echo "=== [1/2] pytest, SAU_TEST_DB=sqlite (all tests) ==="; \
	SAU_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS) || rc_sqlite=$$?; \
	echo "=== [2/2] pytest, SAU_TEST_DB=postgresql (not browser, without tests/sla and tests/infra) ==="; \
	SAU_TEST_DB=postgresql $(PY) -m pytest -m "not browser" --ignore=tests/sla --ignore=tests/infra $(PYTEST_ARGS) || rc_pg=$$?; \
	if [ $$rc_sqlite -ne 0 ] || [ $$rc_pg -ne 0 ]; then \
	    echo "FAILED: sqlite run exit $$rc_sqlite, postgresql run exit $$rc_pg" >&2; exit 1; fi

## faults: fault tests with real processes (PostgreSQL restart, SIGKILL, two nodes); minutes; not part of `make test`
faults: venv system-deps
	SAU_FAULTS=1 $(PY) -m pytest -m faults tests/faults -v -s $(PYTEST_ARGS)

## lint: ruff + mypy --strict on the SLA engine
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict sla

clean:
	rm -rf var/ .pytest_cache/ .hypothesis/ .mypy_cache/ .ruff_cache/ build/ dist/ bench/out/
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +

## distclean: clean, plus the virtualenv and node_modules
distclean: clean
	rm -rf $(VENV) node_modules/ *.egg-info/
