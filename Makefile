# ehc-fhir: two commands on a fresh machine with Python 3.11:
#   make run    virtualenv, install, seed a demo population, serve on http://127.0.0.1:8080/fhir
#   make test   virtualenv, install with test extras, lint, type-check and run every test
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
PATIENTS ?= 200
DATA_DIR ?= data
STORE  ?= sqlite:///$(DATA_DIR)/fhir.db

.PHONY: run serve seed test lint typecheck pytest bench extract clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/fhir-server seed --patients $(PATIENTS) --if-empty --store $(STORE)
	@echo
	@echo "FHIR base URL: http://$(HOST):$(PORT)/fhir"
	@echo "Try:  curl -s 'http://$(HOST):$(PORT)/fhir/metadata' | head -c 300; echo"
	@echo "      curl -s 'http://$(HOST):$(PORT)/fhir/Patient/_history?_count=1'"
	@echo
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT) --store $(STORE)

test: $(VENV)/.installed-test lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check fhir_server seed tests bench scripts

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/load.py

# Regenerate the compact R4 extracts vendored in fhir_server/ from ../shared/fhir-r4.
extract: $(VENV)/.installed
	$(BIN)/python scripts/extract_spec.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
