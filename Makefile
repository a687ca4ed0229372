# claims-dc: `make demo` runs a day in the life of one municipality on the local lab;
# `make test` runs lint and every test. Both set up what they need first, on Debian 12 as root.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

STACK ?= lab
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
# Outside the checkout, so that a fresh clone is checked again only where it differs (mypy
# re-validates each cached module against its source).
MYPY_CACHE := $(HOME)/.cache/claims-dc/mypy
SYSTEM_STAMP := /var/lib/claims-dc/.system-$(shell sha256sum lab/setup-host.sh | cut -c1-12)

.PHONY: help setup bundle demo test test-fast test-lab lint lab-up lab-down lab-status clean

help:
	@echo "make demo       set up, then run the demo on the local lab (Pulumi.$(STACK).yaml)"
	@echo "make test       set up, then lint and every test (fast suite, then the lab suite)"
	@echo "make test-fast  unit tests only: no lab, on every core, about 4 minutes"
	@echo "make test-lab   the slow suite on one shared lab (real podman hosts)"
	@echo "make lint       ruff, mypy, yamllint, ansible-lint (production profile)"
	@echo "make bundle     the claim application's signed offline bundle (build/bundle)"
	@echo "make lab-up | lab-down | lab-status"

setup: $(SYSTEM_STAMP) $(STAMP)

$(SYSTEM_STAMP): lab/setup-host.sh
	lab/setup-host.sh
	mkdir -p $(dir $@) && rm -f $(dir $@).system-* && touch $@

# uv installs the pinned set from its cache in seconds (pip byte-compiles every module of
# ansible's collections and pulumi_aws: minutes on each fresh clone). The venv is Python's own,
# with pip, which the bundle builder uses.
UV_VERSION := 0.13.9

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check 'uv==$(UV_VERSION)'
	$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# Rebuilt only when the application or the pins change; signed with .keys/ (made once, 0600).
bundle: setup
	$(BIN)/claims-dc bundle build --product all

demo: setup bundle
	$(BIN)/claims-dc demo --stack $(STACK)

test: setup lint test-fast test-lab

# The fast suite on every core (its tests share nothing); the lab suite in one process, since
# its tests share the one lab. Each prints its slowest tests, where the suite's time goes.
test-fast: setup
	$(BIN)/pytest -m "not lab" -n auto --durations=15

test-lab: setup bundle
	$(BIN)/pytest -m lab --durations=25

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY_CACHE_DIR=$(MYPY_CACHE) $(BIN)/mypy
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production playbooks/

lab-up: setup
	$(BIN)/claims-dc lab --stack $(STACK) up

lab-down: setup
	$(BIN)/claims-dc lab --stack $(STACK) down

lab-status: setup
	$(BIN)/claims-dc lab --stack $(STACK) status

clean: lab-down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
