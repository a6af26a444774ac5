# Two commands on a fresh machine: `make run` sets everything up and runs the default job; `make test`
# sets everything up and passes the tests. Both are idempotent: the venv is rebuilt only when
# requirements.lock or pyproject.toml change. `make lock` refreshes requirements.lock.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned here, not in the lock: its build (CPU or CUDA) is a property of the machine.
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test lock

run: $(STAMP)
	$(PY) -m benchmark run

test: $(STAMP)
	$(PY) -m pytest
	$(PY) -m pytest -m slow

$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
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
	.lock-venv/bin/python -m pip install --quiet -e ".[dev,postgres]"
	{ echo "# Every package of the tested environment on Linux x86_64, Python 3.11 (make lock writes it;"; \
	  echo "# torch is installed first, as $(TORCH), by make and .ci/run)."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v -i "^torch=="; } > requirements.lock
	rm -rf .lock-venv
