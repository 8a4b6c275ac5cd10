# Set-up and everyday commands. Each target installs what it needs into a virtual environment first.
#   make demo   compile the seed example against its model and print the result
#   make test   run the test suite
#   make venv   only set up the virtual environment
# TORCH picks the torch build installed first (before the project, so pip never
# replaces it with another build): the pinned one by default, in .venv; any other
# gets a virtual environment of its own, .venv-<TORCH> (TORCH='torch==2.9.0' uses
# .venv-torch-2.9.0), so switching TORCH never installs over another build.
# VENV=folder picks the folder instead.

PYTHON ?= python3
PINNED := torch==2.13.0
TORCH ?= $(PINNED)
TORCH_TAG := $(shell printf '%s' '$(TORCH)' | tr -c 'A-Za-z0-9._+-' '-' | sed 's/--*/-/g')
VENV ?= $(if $(filter $(PINNED),$(TORCH)),.venv,.venv-$(TORCH_TAG))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(TORCH_TAG)

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]" "$(TORCH)"  # the pin again, so no extra pulls another torch
	rm -f $(VENV)/.installed*
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/specopt compile examples/seed.opt --model examples/seed_model.py:Network

test: $(STAMP)
	@$(BIN)/python -c "import sys, torch; print(f'torch {torch.__version__}, python {sys.version.split()[0]}, $(VENV)')"
	$(BIN)/python -m pytest

clean:
	rm -rf .venv .venv-* .pytest_cache .hypothesis build dist
