# Two commands on a fresh machine: `make up` installs airgate (pinned, in .venv) and runs it;
# `make test` runs the whole test suite (installing first if needed).

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install up test lint bench

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=24"
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/airgate up --dags examples/dags $(ARGS)

test: install
	$(VENV)/bin/pytest $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy src

bench: install
	$(VENV)/bin/python bench/run.py $(ARGS)
