# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# `make test PYTHON=/path/to/python3.12 VENV=.venv312` tests another interpreter in its own venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Exactly what CI tested: every dependency pinned with the hashes of its files (pip-compile).
LOCK   := requirements.lock
# durable-rules 2.0.28 ships no wheels; on Python 3.13 its C extension calls the removed
# PyEval_CallObject, so we build it with the compatible alias (harmless on 3.11/3.12).
BUILD_FLAGS := CPPFLAGS="-DPyEval_CallObject=PyObject_CallObject $(CPPFLAGS)"
PYTEST := -m pytest -q -p no:cacheprovider

# A wheel install compiles its bytecode; an editable one does not, and with
# PYTHONDONTWRITEBYTECODE set every start would compile our source again (about 40 ms).
COMPILE = $(BIN)/python -m compileall -q cno_pathway
# The templates compiled to Python inside the package (consult/precompile.py), so that a consult
# does not compile its template from source at every start (40-110 ms). Generated, not committed;
# without them (a wheel, a plain pip install) templates compile from source as before.
PRECOMPILED := cno_pathway/consult/_templates/.built

.PHONY: demo test test-fast test-latest install lock bench lint diagram profile-schema clean

$(BIN)/cno-pathway: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BUILD_FLAGS) $(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(COMPILE)
	@touch $@

# again whenever a template or the code that compiles them changes
$(PRECOMPILED): $(BIN)/cno-pathway $(wildcard templates/*.j2) cno_pathway/consult/render.py \
		cno_pathway/consult/precompile.py
	$(BIN)/python -m cno_pathway.consult.precompile
	$(COMPILE)
	@touch $@

install: $(BIN)/cno-pathway $(PRECOMPILED)

demo: install
	$(BIN)/cno-pathway consult examples/typical-multifocal.yaml

test: install
	$(BIN)/python $(PYTEST)

# the quick subset CI runs on the other Python versions (tests marked `slow` left out)
test-fast: install
	$(BIN)/python $(PYTEST) -m "not slow"

# The suite against the newest releases of every dependency, in a venv of its own: tells
# whether the lock can move forward. Not part of CI (a new release must not turn main red).
LATEST := .venv-latest
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(BUILD_FLAGS) $(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,server,cluster]'
	$(LATEST)/bin/python -m pip list --format=freeze | grep -v '^-e'
	$(LATEST)/bin/python $(PYTEST)

# Regenerate the lock from pyproject.toml (needs pip-tools: `pip install pip-tools`). The lock
# holds the test, server and cluster extras: `make test` runs the service's and Dask's tests too.
lock:
	pip-compile --quiet --generate-hashes --extra test --extra server --extra cluster --strip-extras --no-emit-index-url \
	    --no-emit-find-links --output-file=$(LOCK) pyproject.toml

lint: install
	$(BIN)/cno-pathway rules lint

bench: install
	$(BIN)/python -m cno_pathway.consult.precompile
	$(COMPILE)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/service.py

# the pathway diagram, generated from rules/: docs/pathway.mmd and the README's Mermaid block
diagram: install
	@mkdir -p docs
	$(BIN)/cno-pathway pathway --format mermaid -o docs/pathway.mmd
	$(BIN)/cno-pathway pathway --format mermaid --embed README.md

# the profile contract's core schema as data (patient/profile_schema.json), from patient/contract.py:
# what a consult validates with instead of building the pydantic models at every start
profile-schema: install
	$(BIN)/python -m cno_pathway.patient.stored_schema

clean:
	rm -rf $(VENV) $(LATEST) build dist .pytest_cache .hypothesis cno_pathway/consult/_templates
