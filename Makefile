# Switchboard: the two front-door commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install browser run up down status test test-unit test-integration test-e2e test-resilience lint fmt typecheck schemas bench lock clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required")'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@

install: $(STAMP) ## create .venv with pinned dependencies and the `switchboard` command

run: install ## start Kafka, Redis and every service; Ctrl-C stops them all
	deploy/local/switchboard.sh run

up: install ## the same, in the background
	deploy/local/switchboard.sh up

down: ## stop what `make up` started
	deploy/local/switchboard.sh down

status: ## what is running
	deploy/local/switchboard.sh status

browser: ## Debian's chromium for the browser test (installed when missing, as root)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium is missing (apt-get install chromium): the browser test will fail"

test: install browser ## every test tier against a real Kafka broker and Redis (provisioned if needed)
	deploy/local/test.sh

test-unit: install ## pure logic only (no broker)
	$(BIN)/pytest tests/unit

test-integration: install ## real Kafka + Redis, in-process services (channel conformance included)
	$(BIN)/pytest tests/integration tests/conformance

test-e2e: install browser ## services as real processes
	$(BIN)/pytest tests/e2e

test-resilience: install ## Kafka outage, Redis restart, worker kills under load (real processes)
	$(BIN)/pytest tests/resilience

lint: install ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services

fmt: install ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy only
	$(BIN)/mypy shared services

schemas: install ## regenerate shared/schemas/v1.json from the contracts
	$(BIN)/switchboard schemas export

.PHONY: new-channel
new-channel: install ## a new channel folder from the template: make new-channel NAME=kiosk
	@[ -n "$(NAME)" ] || { echo "usage: make new-channel NAME=<name>" >&2; exit 2; }
	$(BIN)/python -m services.channels.scaffold --name "$(NAME)"

bench: install ## benchmarks (print tables; see docs/benchmarks.md)
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/*.py; do $(BIN)/python $$b; done || echo "no benchmarks yet"

lock: ## re-resolve requirements.txt from pyproject.toml (needs the package registry)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip && .lock-venv/bin/pip install -q -e '.[dev]'
	{ echo "# Pinned, compiled from pyproject.toml ([dev] included) by 'make lock'. Do not edit."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' | sort -f; } > requirements.txt
	rm -rf .lock-venv

clean: down ## stop everything and remove local data (.data/)
	rm -rf .data
