# One entry point for newcomers and CI. `make run` needs nothing but Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The production stack's defaults match this machine kind's local services.
STACK_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/p13n
STACK_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install run demo stack migrate test test-unit test-stack lint format bench bench-live bench-ingest bench-blocks bench-segments clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py load_demo

## Embedded default: SQLite, eager Celery, in-memory channel layer, one ASGI process.
run: demo
	@echo "Serving on http://$(HOST):$(PORT)/  (admin: $(BIN)/python manage.py createsuperuser)"
	$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT)

## Production stack: PostgreSQL, Redis, Celery worker + beat, uvicorn with 2 workers (Procfile).
stack: install
	@psql "$(dir $(STACK_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(STACK_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(STACK_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(STACK_DATABASE_URL))"
	DATABASE_URL=$(STACK_DATABASE_URL) REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py migrate --noinput
	DATABASE_URL=$(STACK_DATABASE_URL) REDIS_URL=$(STACK_REDIS_URL) $(BIN)/python manage.py load_demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	DATABASE_URL=$(STACK_DATABASE_URL) REDIS_URL=$(STACK_REDIS_URL) PORT=$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/honcho start -f Procfile

## The whole suite: unit tests on the embedded default, then the production
## stack (PostgreSQL, Redis, Celery worker, ASGI server) and Chromium.
test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not stack and not browser"

test-stack: install
	$(BIN)/pytest -m "stack or browser"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py makemigrations --check --dry-run

## Benchmarks on the production stack (they start and stop it themselves; 127.0.0.1 only).
bench: bench-live bench-ingest bench-blocks bench-segments

bench-live: install
	$(BIN)/python -m bench.live_push

bench-ingest: install
	$(BIN)/python -m bench.ingest $(BENCH_INGEST_ARGS)

bench-blocks: install
	@command -v wrk >/dev/null || { echo "installing wrk (Debian)"; apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.block_api $(BENCH_BLOCKS_ARGS)

bench-segments: install
	$(BIN)/python -m bench.segments $(BENCH_SEGMENTS_ARGS)

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3* staticfiles .pytest_cache .mypy_cache .ruff_cache
