# ehc-fhir: two commands on a fresh machine with Python 3.11:
#   make run    virtualenv, install, seed a demo population, register demo OAuth clients (one per
#               role, keys in data/keys, git-ignored), serve on http://127.0.0.1:8080/fhir with
#               auth on (FHIR_AUTH=off make run: everything open, local development only)
#   make test   virtualenv, install with test extras, lint, type-check and run every test
#               (MongoDB tests: against $$FHIR_TEST_MONGO_URI if set, else the mongoeco emulator, which
#               needs Python 3.13 in its own virtualenv .venv-mongo; skipped, saying why, without one)
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
PATIENTS ?= 200
DATA_DIR ?= data
STORE  ?= sqlite:///$(DATA_DIR)/fhir.db
KEYS_DIR ?= $(DATA_DIR)/keys
# The mongoeco MongoDB wire-protocol emulator (tests only) needs Python 3.13: pyenv's, else one on PATH.
ifndef PYTHON313
PYTHON313 := $(shell { ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 \
                         /root/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null; \
                       p=$$(pyenv prefix 3.13 2>/dev/null) && echo "$$p/bin/python3.13"; \
                       command -v python3.13; } 2>/dev/null | while read -r py; do \
                       "$$py" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null \
                       && echo "$$py" && break; done)
endif
MONGO_VENV ?= .venv-mongo
MONGOECO_REQ ?= mongoeco>=4.11,<5
PYMONGO_REQ  ?= pymongo>=4.6,<5

.PHONY: run demo-clients serve seed test lint typecheck pytest mongo-env bench extract clean

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
	@$(MAKE) --no-print-directory demo-clients
	@echo
	@echo "FHIR base URL: http://$(HOST):$(PORT)/fhir"
	@echo "Try:  curl -s 'http://$(HOST):$(PORT)/fhir/metadata' | head -c 300; echo   (public)"
	@echo "      curl -s 'http://$(HOST):$(PORT)/fhir/.well-known/smart-configuration'"
	@echo
	$(BIN)/fhir-server serve --host $(HOST) --port $(PORT) --store $(STORE)

# One OAuth client per role (two hospitals, insurer, MCH programme, referral partner) for the
# seeded organisations; idempotent. Private keys go to $(KEYS_DIR) (mode 0600, outside git).
demo-clients: $(VENV)/.installed
	@$(BIN)/python scripts/demo_clients.py --store $(STORE) --keys $(KEYS_DIR) \
	  --url http://$(HOST):$(PORT) --fhir-server $(BIN)/fhir-server

test: $(VENV)/.installed-test lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check fhir_server seed tests bench scripts

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test mongo-env
	$(BIN)/pytest

# Never fails: without Python 3.13 (or PyPI) the MongoDB tests are skipped and pytest says why.
mongo-env: $(MONGO_VENV)/.installed

$(MONGO_VENV)/.installed:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "mongo-env: no Python 3.13 (pyenv versions 3.13.x, python3.13 on PATH): the MongoDB tests" \
	       "will be skipped unless FHIR_TEST_MONGO_URI names a server"; \
	elif { [ -x $(MONGO_VENV)/bin/python ] || $(PYTHON313) -m venv $(MONGO_VENV); } \
	     && $(MONGO_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	          '$(MONGOECO_REQ)' '$(PYMONGO_REQ)'; then \
	  touch $@; \
	else \
	  echo "mongo-env: could not prepare $(MONGO_VENV) with $(PYTHON313): the MongoDB tests will be" \
	       "skipped unless FHIR_TEST_MONGO_URI names a server"; \
	  rm -rf $(MONGO_VENV); \
	fi

bench: $(VENV)/.installed-test
	$(BIN)/python bench/load.py

# Regenerate the compact R4 extracts vendored in fhir_server/ from ../shared/fhir-r4.
extract: $(VENV)/.installed
	$(BIN)/python scripts/extract_spec.py

clean:
	rm -rf $(VENV) $(MONGO_VENV) .pytest_cache .mypy_cache .ruff_cache
