# Two commands matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
DATABASES := default concerts payments
export PORT

# Each test run gets databases, a RabbitMQ vhost and a cache key prefix of its own.
TEST_RUN := $(shell $(PYTHON) -c 'import uuid; print(uuid.uuid4().hex[:10])')
PG := postgres://root@127.0.0.1:5432
TEST_ENV := TICKETING_DEV=1 TICKETING_TEST_RUN=$(TEST_RUN) \
	ACCOUNTS_DATABASE_URL=$${TEST_ACCOUNTS_DATABASE_URL:-$(PG)/ticketing_accounts} \
	CONCERTS_DATABASE_URL=$${TEST_CONCERTS_DATABASE_URL:-$(PG)/ticketing_concerts} \
	PAYMENTS_DATABASE_URL=$${TEST_PAYMENTS_DATABASE_URL:-$(PG)/ticketing_payments} \
	CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/ticketing_test_$(TEST_RUN) \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/0} CACHE_KEY_PREFIX=ticketing_test_$(TEST_RUN) \
	PAYMENTS_GATEWAY=ticketing.payments.gateways.FaultInjectingGateway CONSUMER_MAX_RETRIES=3 CONSUMER_RETRY_BASE_SECONDS=0.05 \
	OUTBOX_CLAIM_LEASE_SECONDS=2 TICKETING_VAR_DIR=$(CURDIR)/var/test-$(TEST_RUN)
# tests/embedded runs on what `make run` uses with no configuration: its own PostgreSQL and Redis
# (ticketing.devservers, started by the suite) under a folder and on ports of its own, so that it never
# meets a `make run` of the same clone; no database URL, broker URL or Redis URL.
FREE_PORT = $(shell $(PYTHON) -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EMBEDDED_TEST_ENV = env -u ACCOUNTS_DATABASE_URL -u CONCERTS_DATABASE_URL -u PAYMENTS_DATABASE_URL \
	-u CELERY_BROKER_URL -u REDIS_URL -u QUEUE_REDIS_URL TICKETING_DEV=1 TICKETING_TEST_RUN=$(TEST_RUN) \
	EMBEDDED_POSTGRES_PORT=$(FREE_PORT) EMBEDDED_REDIS_PORT=$(FREE_PORT) \
	PAYMENTS_GATEWAY=ticketing.payments.gateways.FaultInjectingGateway CONSUMER_MAX_RETRIES=3 CONSUMER_RETRY_BASE_SECONDS=0.05 \
	CONSUMER_RETRY_CAP_SECONDS=2 REDIS_VISIBILITY_TIMEOUT_SECONDS=10 \
	OUTBOX_CLAIM_LEASE_SECONDS=2 TICKETING_VAR_DIR=$(CURDIR)/var/test-$(TEST_RUN)-embedded

.PHONY: install migrate demo run serve test lint check-types check-imports pytest pytest-embedded chaos bench messages clean

# Only `make run` (with the steps it runs) and the checks may use the development defaults (DEBUG on,
# a public SECRET_KEY); set DEBUG=0 and a SECRET_KEY to run the real thing through the same command.
migrate demo run serve check-types messages: export TICKETING_DEV ?= 1
# `make run`'s own PostgreSQL and Redis (data under var/) around a command, unless *_DATABASE_URL and
# REDIS_URL point elsewhere; stopped when the command ends. Already running: used as they are.
SERVERS := $(BIN)/python -m ticketing.devservers

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

migrate: install
	@$(SERVERS) sh -c 'for db in $(DATABASES); do $(BIN)/python manage.py migrate --database $$db --noinput -v 0 || exit 1; done'

demo: migrate
	$(BIN)/python manage.py collectstatic --noinput -v 0
	@$(SERVERS) sh -c '$(BIN)/python manage.py load_demo && $(BIN)/python manage.py ensure_demo_admin'

# The servers start first and stop last: Ctrl-C stops the processes, then PostgreSQL and Redis.
run: install
	@$(SERVERS) $(MAKE) --no-print-directory serve

serve: demo
	@rm -rf $${TICKETING_VAR_DIR:-var}/metrics  # metrics of the last run's processes (Prometheus multiprocess files)
	@echo "shop: http://127.0.0.1:$(PORT)/   API docs: http://127.0.0.1:$(PORT)/api/docs/   admin: http://127.0.0.1:$(PORT)/admin/"
	@echo "metrics: http://127.0.0.1:$(PORT)/metrics   health: http://127.0.0.1:$(PORT)/healthz  /readyz"
	$(BIN)/honcho start -f Procfile -p $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types: install
	$(BIN)/mypy

check-imports: install
	$(BIN)/lint-imports

pytest: install
	@$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS); status=$$?; rm -rf var/test-$(TEST_RUN); exit $$status

pytest-embedded: install
	@$(EMBEDDED_TEST_ENV) $(BIN)/pytest tests/embedded $(EMBEDDED_PYTEST_ARGS); status=$$?; \
		rm -rf var/test-$(TEST_RUN)-embedded; exit $$status

test: lint check-types check-imports pytest pytest-embedded

# The long chaos run (minutes; stops RabbitMQ for 30 s): figures in var/chaos-results.json.
chaos: install
	@$(TEST_ENV) CHAOS_SCALE=full CHAOS_RESULTS=$(CURDIR)/var/chaos-results.json \
		$(BIN)/pytest -q -s tests/chaos $(PYTEST_ARGS); status=$$?; rm -rf var/test-$(TEST_RUN); exit $$status

# Benchmarks (about 50 minutes; see docs/BENCHMARKS.md): the saga end to end, ours beside the unsafe
# .delay() baseline and django-celery-outbox, at saturation and at 55/s; then the relay alone;
# then the on-sale rush with and without the waiting room, and a poll flood (needs wrk).
bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(BIN)/python -m bench --configs ours,delay,dco --mode closed --concurrency 16 --duration 15 --repeat 3 \
		--chart docs/saga-closed.png
	$(BIN)/python -m bench --configs ours,delay,dco --mode open --rate 11 --duration 15 --repeat 3 \
		--chart docs/saga-open.png
	$(BIN)/python -m bench --configs ours,delay,dco --mode burst --chart docs/saga-burst.png
	$(BIN)/python -m bench --mode relay --chart docs/relay-throughput.png
	$(BIN)/python -m bench --mode rush --clients 10000
	$(BIN)/python -m bench --mode poll-flood

# The shop's Korean text: the compiled .mo is committed; run this after editing the .po (needs gettext).
messages: install
	cd ticketing/shop && ../../$(BIN)/python ../../manage.py compilemessages -l ko -v 0

# Forgets `make run`'s data (stop it first): its PostgreSQL and Redis start empty next time.
clean:
	rm -rf var/postgres var/postgres.log var/redis var/redis.log var/test-*
