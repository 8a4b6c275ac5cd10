# Set-up and everyday commands. Each target installs what it needs into .venv first.
#   make demo   compile the seed example against its model and print the result
#   make test   run the test suite
# TORCH picks the torch build installed first (before the project, so pip never
# replaces it with another build).

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]" "$(TORCH)"  # the pin again, so no extra pulls another torch
	touch $@

demo: $(VENV)/.installed
	$(BIN)/specopt compile examples/seed.opt --model examples/seed_model.py:Network

test: $(VENV)/.installed
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist
