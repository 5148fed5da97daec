# The two commands of the README. Each creates or refreshes the virtual environment in .venv first, from the
# project's own files: pyproject.toml (what we need) and constraints.txt (the versions CI was green with).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test,benchmark]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/nnunet_dumm_demo $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)
