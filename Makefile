# The README's two commands; each sets up .venv by itself first:
#
#   make up      run the runtime of examples/config.toml on an embedded nats-server
#   make test    ruff, the import contracts, mypy --strict, then the whole test suite
#                (what .ci/run calls)
#
# Set-up (target `setup`): create .venv with $(PYTHON) when it is missing (Python 3.11
# or newer, checked first), then `pip install -e ".[dev]"` into it when pyproject.toml
# differs from the copy the last install left in .venv. With nothing to do it costs a
# few milliseconds. Every command runs from .venv/bin: the system Python is never
# touched.
#
# Every path below hangs off this file's own directory, so the current directory does
# not matter; from a subdirectory: make -C "$(git rev-parse --show-toplevel)" up
# (or make -C .. up).
#
# Variables: PYTHON (the interpreter that creates .venv; default python3),
# VENV (default .venv, relative to the repository root), PYTEST_WORKERS (make test's
# pytest-xdist workers; default 4, 0 runs in one process), PYTEST_ARGS (more pytest
# arguments for make test).

PYTHON ?= python3
VENV ?= .venv
# The tests mostly wait on real processes, so 2 cores carry 4 workers. `--dist
# loadgroup` spreads the tests one by one, except that tests/conftest.py keeps a
# module's tests on one worker when they share a module-scoped fixture (one `actorq up`
# for a file's tests), so that it starts once.
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?=

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
venv := $(abspath $(if $(filter /%,$(VENV)),$(VENV),$(ROOT)/$(VENV)))
# The venv as the hints print it: relative to the repository root when inside it.
venv_shown := $(patsubst $(ROOT)/%,%,$(venv))
# A copy of the pyproject.toml installed last; set-up compares contents, not dates,
# so a checkout or `touch` that changes nothing does not reinstall.
stamp := $(venv)/pyproject.toml.installed
# Exit status 0 on Python 3.11 or newer; any Python, even 2.x, can run this line.
py_ok := import sys; sys.exit(sys.version_info < (3, 11))

SHELL := /bin/sh
.SHELLFLAGS := -ec
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := help
.PHONY: help setup up test

help:
	@echo "make up      run actorq (examples/config.toml, embedded NATS); sets up $(venv_shown) first"
	@echo "make test    ruff, import contracts, mypy and the whole test suite; sets up $(venv_shown) first"
	@echo "make setup   only the set-up: create $(venv_shown), install when pyproject.toml changed"

setup:
	@if [ ! -x "$(venv)/bin/python" ]; then \
	    if ! command -v "$(PYTHON)" >/dev/null 2>&1; then \
	        echo "error: $(PYTHON) not found; actorq needs Python 3.11 or newer." \
	            "Install it, or name one: make PYTHON=/path/to/python3.11 $(or $(MAKECMDGOALS),setup)" >&2; \
	        exit 1; \
	    fi; \
	    if ! "$(PYTHON)" -c '$(py_ok)' >/dev/null 2>&1; then \
	        echo "error: $(PYTHON) is $$("$(PYTHON)" --version 2>&1); actorq needs Python 3.11 or newer." \
	            "Install one, or name it: make PYTHON=/path/to/python3.11 $(or $(MAKECMDGOALS),setup)" >&2; \
	        exit 1; \
	    fi; \
	    echo "== creating $(venv_shown) with $$("$(PYTHON)" --version 2>&1)"; \
	    "$(PYTHON)" -m venv "$(venv)" || { rm -f "$(venv)/bin/python"; exit 1; }; \
	fi
	@if ! cmp -s "$(ROOT)/pyproject.toml" "$(stamp)"; then \
	    if ! "$(venv)/bin/python" -c '$(py_ok)' >/dev/null 2>&1; then \
	        echo "error: $(venv_shown) runs $$("$(venv)/bin/python" --version 2>&1); actorq needs" \
	            "Python 3.11 or newer. Remove it (rm -rf $(venv)) and run make again," \
	            "with PYTHON=/path/to/python3.11 if python3 is older" >&2; \
	        exit 1; \
	    fi; \
	    if [ -e "$(stamp)" ]; then why="pyproject.toml changed"; else why="first install"; fi; \
	    echo "== installing actorq with its dev extras into $(venv_shown) ($$why)"; \
	    cd "$(ROOT)"; \
	    "$(venv)/bin/python" -m pip install -e ".[dev]" || { \
	        echo "error: the install into $(venv_shown) failed (see above). If $(venv_shown) is" \
	            "broken (say, its creation was interrupted), remove it (rm -rf $(venv))" \
	            "and run make again" >&2; \
	        exit 1; }; \
	    cp pyproject.toml "$(stamp)"; \
	fi

# `exec`: actorq replaces the recipe's shell, so a signal reaches it with nothing in
# between but make itself. Ctrl-C reaches make and actorq at once (one process group);
# make waits for actorq's graceful stop. A SIGTERM to make's pid is forwarded once by
# make. Beware `kill -TERM -PGID` (the whole group): actorq then gets it twice, once
# directly and once from make, and reads the second as "stop at once".
up: setup
	@url="$${ACTORQ_NATS_URL:-nats://127.0.0.1:$${ACTORQ_NATS_PORT:-4222}}"; \
	ps_opts=""; send_env=""; \
	if [ "$$url" != "nats://127.0.0.1:4222" ]; then \
	    ps_opts=" --url $$url"; send_env="ACTORQ_NATS_URL=$$url "; \
	fi; \
	if [ -n "$${ACTORQ_NAMESPACE:-}" ]; then \
	    ps_opts="$$ps_opts --namespace $$ACTORQ_NAMESPACE"; \
	    send_env="$${send_env}ACTORQ_NAMESPACE=$$ACTORQ_NAMESPACE "; \
	fi; \
	ps_env=""; \
	if [ -n "$${ACTORQ_NATS_DATA_DIR:-}" ]; then \
	    ps_env="ACTORQ_NATS_DATA_DIR=$$ACTORQ_NATS_DATA_DIR "; \
	    send_env="$${send_env}$$ps_env"; \
	fi; \
	echo "== actorq up examples/config.toml (NATS at $$url); ready once it prints 'actorq ready'."; \
	echo "   Next, in another terminal in $(ROOT):"; \
	printf '     %-44s # %s\n' \
	    "$${ps_env}$(venv_shown)/bin/actorq ps$$ps_opts" "every process with its pid and jobs" \
	    "$${send_env}$(venv_shown)/bin/python examples/sync_send.py 2 3" "one job; prints 'result: 5'"; \
	echo "   Ctrl-C or SIGTERM stops it gracefully; a second one stops at once."; \
	cd "$(ROOT)"; \
	exec "$(venv)/bin/actorq" up examples/config.toml

test: setup
	@cd "$(ROOT)"; echo "== ruff"; "$(venv)/bin/ruff" check actorq supervisors tests bench examples
	@cd "$(ROOT)"; echo "== import contracts"; "$(venv)/bin/lint-imports"
	@cd "$(ROOT)"; echo "== mypy --strict"; "$(venv)/bin/mypy"
	@cd "$(ROOT)"; echo "== pytest"; exec "$(venv)/bin/pytest" -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
