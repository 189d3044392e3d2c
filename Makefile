# Two commands for a newcomer: `make run` and `make test`. Each sets up .venv on first use,
# reinstalls only when pyproject.toml changes, and installs Qt's missing Debian libraries as root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := resources/samples/sample-convnet.onnx

.PHONY: run test lint sysdeps bench clean

$(STAMP): pyproject.toml
	@bash packaging/sysdeps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

sysdeps:
	@bash packaging/sysdeps.sh

run: $(STAMP)
	$(BIN)/advisor $(SAMPLE)

lint: $(STAMP)
	$(BIN)/ruff check advisor tests bench packaging
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/accuracy.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
