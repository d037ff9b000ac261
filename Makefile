# Two commands on a fresh machine: `make up` installs airgate (pinned, in .venv) and runs it;
# `make test` runs the whole test suite (installing first if needed).

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install up test lint bench sandbox-tools

$(STAMP): requirements.lock pyproject.toml | sandbox-tools
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=24"
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# bubblewrap isolates each environment from airgate and the others (see README, Security).
# Installed with apt when we can; otherwise airgate runs and says plainly that it can't isolate.
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }; \
	  else echo "note: install bubblewrap (Debian: apt-get install bubblewrap) to isolate environments"; fi; }

up: install
	$(VENV)/bin/airgate up --dags examples/dags $(ARGS)

test: install
	$(VENV)/bin/pytest $(ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/mypy src

bench: install
	$(VENV)/bin/python bench/run.py $(ARGS)
