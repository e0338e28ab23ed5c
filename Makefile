# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# durable-rules 2.0.28 ships no wheels; on Python 3.13 its C extension calls the removed
# PyEval_CallObject, so we build it with the compatible alias (harmless on 3.11/3.12).
BUILD_FLAGS := CPPFLAGS="-DPyEval_CallObject=PyObject_CallObject $(CPPFLAGS)"

# A wheel install compiles its bytecode; an editable one does not, and with
# PYTHONDONTWRITEBYTECODE set every start would compile our source again (about 40 ms).
COMPILE := $(BIN)/python -m compileall -q cno_pathway

.PHONY: demo test install bench lint diagram clean

$(BIN)/cno-pathway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BUILD_FLAGS) $(BIN)/python -m pip install --quiet -e '.[test,cluster]'
	$(COMPILE)
	@touch $@

install: $(BIN)/cno-pathway

demo: install
	$(BIN)/cno-pathway consult examples/typical-multifocal.yaml

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/cno-pathway rules lint

bench: install
	$(COMPILE)
	$(BIN)/python benchmarks/run.py

# the pathway diagram, generated from rules/: docs/pathway.mmd and the README's Mermaid block
diagram: install
	@mkdir -p docs
	$(BIN)/cno-pathway pathway --format mermaid -o docs/pathway.mmd
	$(BIN)/cno-pathway pathway --format mermaid --embed README.md

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
