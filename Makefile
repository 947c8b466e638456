# The two commands: `make demo` and `make test`. Everything else here is what they are made of.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export DO_NOT_TRACK := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: lock postgres demo test test-fast test-sdks setup prepare lint docs clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml sdks/python/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]' -e sdks/python
	@touch $@

setup: $(VENV)/.installed  ## create .venv and install CMS with its test tools

prepare: setup  ## prepare what loading the code location needs (the dbt manifest)
	$(VENV)/bin/cms dbt prepare

DOCS_PORT ?= 8080
docs: prepare  ## dbt docs for analysts, from the demo's warehouse: generate and serve on 127.0.0.1:8080 (DOCS_PORT=...)
	export CMS_DUCKDB_PATH="$$($(PY) -c 'from cms_dagster import settings; print(settings.load().duckdb_path)')" && \
	cd dbt_project && ../$(VENV)/bin/dbt docs generate --profiles-dir . && \
	../$(VENV)/bin/dbt docs serve --profiles-dir . --host 127.0.0.1 --port $(DOCS_PORT)

demo: prepare  ## simulate the week up to now, build every asset, serve the Dagster UI on 127.0.0.1:3000 (PORT=3001 for another port)
	$(VENV)/bin/cms demo $(if $(PORT),--port $(PORT))

JUNIT := /usr/share/java/junit-platform-console-standalone.jar
$(JUNIT):  # JUnit 5 from Debian (no Maven Central here)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq junit5 >/dev/null; \
	else echo "JUnit 5 is missing: sudo apt-get install junit5" >&2; exit 1; fi

CHROMIUM := /usr/bin/chromium
$(CHROMIUM):  # headless Chromium from Debian for the dashboard's browser tests (no browser downloads here)
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "Chromium is missing: sudo apt-get install chromium" >&2; exit 1; fi
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
postgres:  ## Debian's PostgreSQL server binaries for the orchestrator tests (Dagster on PostgreSQL)
	@if [ -z "$(PG_INITDB)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL is missing: sudo apt-get install postgresql" >&2; exit 1; fi; fi

test-sdks: $(JUNIT)  ## the Java and Node.js SDK suites
	sdks/java/build.sh test
	cd sdks/node && node --test

test: prepare postgres test-sdks $(CHROMIUM)  ## set up and run the whole test suite (dashboard screenshots: .cms/artifacts/screenshots/)
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

test-fast: prepare postgres  ## the developer loop: every test not marked slow (no materializations, dbt builds or stand-in stacks)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lock: setup  ## pin the image's dependencies (infra/docker/requirements.lock) after changing pyproject.toml
	$(VENV)/bin/uv pip compile pyproject.toml -q --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header -o infra/docker/requirements.lock

lint: setup  ## ruff
	$(VENV)/bin/ruff check cms_dagster cms_harness tests benchmarks

clean:  ## remove the embedded state (.cms/) but keep the virtualenv
	rm -rf .cms
