# Two commands on a fresh machine: `make run` sets everything up and runs the default job; `make test`
# sets everything up and passes the tests. Both are idempotent: the venv is rebuilt only when
# requirements.lock or pyproject.toml change. `make lock` refreshes requirements.lock.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned here, not in the lock: its build (CPU or CUDA) is a property of the machine.
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed
# A venv without this file is someone's own: make never deletes it.
MADE := $(VENV)/.made-by-make

.PHONY: run test lock

run: $(STAMP)
	$(PY) -m benchmark run

test: $(STAMP)
	$(PY) -m pytest
	$(PY) -m pytest -m slow

$(STAMP): requirements.lock pyproject.toml Makefile
	@if [ -d $(VENV) ] && [ ! -f $(MADE) ]; then \
	  echo "error: $(VENV) exists and was not made by make; remove it to let make build it, or keep it and use README's long form"; exit 2; fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	touch $(MADE)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# A fresh venv with the project and its extras at the newest releases its ranges allow, frozen.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet $(TORCH)
	.lock-venv/bin/python -m pip install --quiet -e ".[dev,postgres,slurm]"
	set -o pipefail; \
	{ echo "# Every package of the tested environment on $$(.lock-venv/bin/python -c 'import platform; print(platform.system(), platform.machine(), "Python", platform.python_version())')"; \
	  echo "# (make lock writes it; torch is installed first, as $(TORCH), by make and .ci/run)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v -i "^torch=="; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock
	rm -rf .lock-venv
