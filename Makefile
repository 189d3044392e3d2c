# Two commands for a newcomer: `make run` and `make test`. Each sets up .venv on first use,
# reinstalls only when pyproject.toml changes, and installs Qt's missing Debian libraries as root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := resources/samples/sample-convnet.onnx

.PHONY: run test lint sysdeps bench wheel clean

$(STAMP): pyproject.toml
	@bash packaging/sysdeps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

sysdeps:
	@bash packaging/sysdeps.sh

# The sample model is generated (deterministically), not committed.
$(SAMPLE): packaging/make_sample_model.py | $(STAMP)
	$(BIN)/python packaging/make_sample_model.py

run: $(STAMP) $(SAMPLE)
	$(BIN)/advisor $(SAMPLE)

lint: $(STAMP)
	$(BIN)/ruff check advisor tests bench packaging
	$(BIN)/mypy

test: $(STAMP) $(SAMPLE) lint
	$(BIN)/python -m pytest -q

wheel: $(STAMP) $(SAMPLE)
	$(BIN)/python -m pip wheel --no-deps -w dist .

bench: $(STAMP)
	$(BIN)/python bench/accuracy.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
