"""Settings for the ticketing project, read from the environment (12-factor).

Every variable of docs/CONTRACT.md §2, and every tuning variable of docs/GUIDE.md, is read here and
nowhere else. With nothing set, the project runs on the servers `make run` starts under ``var/``
(ticketing.devservers): PostgreSQL with the three service databases, and Redis as cache, throttle store,
waiting room and Celery broker.
"""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ticketing import devservers
from ticketing.events.catalogue import CATALOGUE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TICKETING_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Prometheus' multiprocess mode: every process writes its samples here (read before prometheus_client
# is imported); `make run` empties it at start.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_rate(name: str, default: str) -> str:
    """A throttle rate in the ``N/period`` form (period: s, min, hour, day), checked at start-up."""
    value = os.environ.get(name) or default
    if not re.fullmatch(r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 20/min (N/s, N/min, N/hour or N/day), not {value!r}.")
    return value


# Development defaults (DEBUG on, a public key that also signs the JWTs) only where they are asked
# for: `make run` and the tests set TICKETING_DEV=1. Anything else (the image, gunicorn or celery
# started by hand, DEBUG=0) refuses to start without a real SECRET_KEY.
DEVELOPMENT = env_bool("TICKETING_DEV", False)
DEBUG = env_bool("DEBUG", DEVELOPMENT)
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789"  # noqa: S105
MIN_SECRET_KEY_LENGTH = 32


def secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if DEVELOPMENT and DEBUG:
        return key or DEVELOPMENT_SECRET_KEY
    if not key or key == DEVELOPMENT_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set to a secret of at least {MIN_SECRET_KEY_LENGTH} characters (it signs the "
            "login tokens). Only `make run` (TICKETING_DEV=1, DEBUG on) may use the development key."
        )
    return key


SECRET_KEY = secret_key()

ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",  # refresh tokens: rotated, a used one refused, revocable
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "ticketing.observability",
    "ticketing.outbox",
    "ticketing.idempotency",
    "ticketing.accounts",
    "ticketing.concerts",
    "ticketing.payments",
    "ticketing.audit",
    "ticketing.shop",
    "ticketing.door",
]

MIDDLEWARE = [
    "ticketing.observability.middleware.RequestMetricsMiddleware",
    # Pages and API answers gzipped for clients that accept it: a 5,000-seat map is 1.8 MB of HTML and
    # under 300 KB on the wire. (Django's GZip pads each answer at random against BREACH.)
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ticketing.urls"
WSGI_APPLICATION = "ticketing.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases: one per service, chosen by ticketing.db_routers.ServiceRouter -----------------------
# Celery closes Django's connections around every task unless CELERY_DB_REUSE_MAX is set; web
# requests reuse them for CONN_MAX_AGE seconds, checked before use.
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60)
SERVICE_DATABASES = {service.name: service.database for service in CATALOGUE.services}


def database(service: str) -> dict[str, Any]:
    # Unset: the PostgreSQL of `make run` (ticketing.devservers). The project speaks PostgreSQL only.
    url = os.environ.get(f"{service.upper()}_DATABASE_URL") or devservers.database_url(service)
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=CONN_MAX_AGE, conn_health_checks=True))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"{service.upper()}_DATABASE_URL must be a postgres:// URL, not {url!r}.")
    # Each test run creates and drops databases of its own, so two runs never collide.
    config["TEST"] = {"NAME": f"test_{config['NAME']}_{os.environ.get('TICKETING_TEST_RUN', os.getpid())}"}
    return config


DATABASES = {alias: database(service) for service, alias in SERVICE_DATABASES.items()}
DATABASE_ROUTERS = ["ticketing.db_routers.ServiceRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts --------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins: past the free failures of an account (or of a client address) within the window,
# each further failure makes it wait the base, twice that, four times, ... up to the cap (by default
# 1 s, 2 s, 4 s, ... 60 s): guessing is slow, and nobody can lock an account for good.
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 5)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20)
LOGIN_DELAY_BASE_SECONDS = env_int("LOGIN_DELAY_BASE_SECONDS", 1)
LOGIN_DELAY_CAP_SECONDS = env_int("LOGIN_DELAY_CAP_SECONDS", 60)
# Reverse proxies in front of the web server whose X-Forwarded-For entries are believed (0: none, the
# connection's address is the client's).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Rates a person never meets; a load test raises them.
SIGNUP_RATE_PER_ADDRESS = env_rate("SIGNUP_RATE_PER_ADDRESS", "20/hour")
BOOKING_RATE_PER_USER = env_rate("BOOKING_RATE_PER_USER", "20/min")

# Unset: the Redis of `make run` (ticketing.devservers). Cache, throttles, the waiting room
# and (without CELERY_BROKER_URL) Celery's broker live there.
REDIS_URL = os.environ.get("REDIS_URL") or devservers.redis_url()
CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "ticketing"),
        # A Redis that hangs costs a request at most this long per call, then its use fails open
        # (ticketing/cache_policy.py) instead of holding a web worker.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
# Sessions stay in the accounts database (Django's default), not in Redis: Django's cached_db store
# fails on a Redis outage (500s on sign-in), and a cached copy could outlive a logout made while Redis
# was down. A session read is one indexed row.

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # JWTs for programs; the shop's pages call the same endpoints with the Django session (CSRF-checked).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["ticketing.parsers.JSONParser"],  # DRF's, with a 400 for a body nested too deeply
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "ticketing.api.AutoSchema",
    "EXCEPTION_HANDLER": "ticketing.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,  # for any stock DRF throttle; ours use ticketing.api.client_address
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ALGORITHM": "HS256",  # pinned: tokens with any other "alg" are refused
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # Each refresh answers a new refresh token and blacklists the one it used, so a stolen token works
    # once at most; a password change blacklists them all (accounts.services.user_tokens_revoke).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ticketing API",
    "DESCRIPTION": "Concert booking and payment as one saga over a transactional outbox.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Saga ------------------------------------------------------------------------------------------
RESERVATION_HOLD_SECONDS = env_int("RESERVATION_HOLD_SECONDS", 300)
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)
# On-sale day: live (PENDING or CONFIRMED) seats per user and performance, also the most in one booking.
MAX_SEATS_PER_USER = env_int("MAX_SEATS_PER_USER", 4)
# The waiting room of a queued performance: users admitted at once, how long an admission lasts, and
# how long it survives a cancelled booking (time to pick other seats) before it is handed on.
QUEUE_ACTIVE_USERS = env_int("QUEUE_ACTIVE_USERS", 100)
QUEUE_ADMISSION_SECONDS = env_int("QUEUE_ADMISSION_SECONDS", 300)
QUEUE_RETRY_GRACE_SECONDS = env_int("QUEUE_RETRY_GRACE_SECONDS", 30)
# Presence: an admission nobody uses ends after this first window; activity (coming back to the seat
# map, a booking) gives it the full QUEUE_ADMISSION_SECONDS.
QUEUE_FIRST_WINDOW_SECONDS = env_int("QUEUE_FIRST_WINDOW_SECONDS", 60)
# Joins per minute and performance, per user and per client address (then 429 with Retry-After).
QUEUE_JOIN_RATE_PER_USER = env_int("QUEUE_JOIN_RATE_PER_USER", 10)
QUEUE_JOIN_RATE_PER_ADDRESS = env_int("QUEUE_JOIN_RATE_PER_ADDRESS", 120)
# Pacing: the longest poll_after_seconds, and over how many seconds the pre-queue's first polls after
# the opening are spread.
QUEUE_POLL_MAX_SECONDS = env_int("QUEUE_POLL_MAX_SECONDS", 30)
QUEUE_OPENING_SPREAD_SECONDS = env_int("QUEUE_OPENING_SPREAD_SECONDS", 3)
# The opening moves the pre-queue into the line this many users per Lua call (a few ms of Redis each).
QUEUE_OPENING_BATCH = env_int("QUEUE_OPENING_BATCH", 1000)
# The web front's timer: admissions advance (lapses, the opening's batches) this often, in seconds.
QUEUE_ADVANCE_INTERVAL_MS = env_int("QUEUE_ADVANCE_INTERVAL_MS", 500)
DEMO_SALES_OPEN_IN_SECONDS = env_int("DEMO_SALES_OPEN_IN_SECONDS", 120)
# Where the waiting room lives (its Lua scripts): REDIS_URL's Redis unless QUEUE_REDIS_URL names another.
QUEUE_REDIS_URL = os.environ.get("QUEUE_REDIS_URL") or REDIS_URL

# After the sale. Tickets carry an Ed25519 signature a door device checks without the database. The key:
# TICKET_SIGNING_KEY, 32 random bytes in base64url (the seed of the private key); unset, it is derived
# from SECRET_KEY (which outside `make run` must itself be a real secret, so the default is never public).
TICKET_SIGNING_KEY = os.environ.get("TICKET_SIGNING_KEY", "")
if TICKET_SIGNING_KEY and not re.fullmatch(r"[A-Za-z0-9_-]{43}=?", TICKET_SIGNING_KEY):
    raise ImproperlyConfigured("TICKET_SIGNING_KEY must be 32 bytes in base64url (43 characters), or unset.")
# A waiting list's offer holds the freed seats for its person this long (never past the performance's start).
WAITLIST_OFFER_SECONDS = env_int("WAITLIST_OFFER_SECONDS", 1800)

# Which service queues consume each event, derived from the catalogue (ticketing/events/catalogue.py).
# The relay publishes an event to the consumer task (ticketing.events.schema.task_name) of every queue
# listed for it; `manage.py check` fails when this and the catalogue differ.
OUTBOX_EVENT_ROUTES: dict[str, list[str]] = CATALOGUE.routes()
# What publish() does with an event: write it to the outbox (the only safe choice). The benchmark
# (bench/saga.py) puts the unsafe ``.delay()``-after-commit baseline and django-celery-outbox here, to
# run the same saga through each.
OUTBOX_PUBLISH_BACKEND = os.environ.get("OUTBOX_PUBLISH_BACKEND", "ticketing.outbox.publish.store_in_outbox")
OUTBOX_BATCH_SIZE = env_int("OUTBOX_BATCH_SIZE", 100)
# A relay publishes a batch with publisher confirms: it connects (if it must) within the connect timeout,
# waits for the confirms up to the confirm timeout, and tries once more on a fresh connection. The claim
# lease is twice that worst case, and a publish gives up before its lease ends; every write after the
# claim is fenced on the lease anyway, so a relay whose lease ran out can no longer change the rows.
OUTBOX_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("OUTBOX_CONNECT_TIMEOUT_SECONDS", "2"))
OUTBOX_CONFIRM_TIMEOUT_SECONDS = float(os.environ.get("OUTBOX_CONFIRM_TIMEOUT_SECONDS", "5"))
OUTBOX_CLAIM_LEASE_SECONDS = env_int(
    "OUTBOX_CLAIM_LEASE_SECONDS", math.ceil(2 * 2 * (OUTBOX_CONNECT_TIMEOUT_SECONDS + OUTBOX_CONFIRM_TIMEOUT_SECONDS))
)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 12)
OUTBOX_BACKOFF_CAP_SECONDS = env_int("OUTBOX_BACKOFF_CAP_SECONDS", 60)
# While the broker is unreachable the relay pauses (backoff up to this cap, reset by the first publish
# that goes through) and claims nothing: an outage spends no row's attempts.
OUTBOX_BROKER_BACKOFF_CAP_SECONDS = float(os.environ.get("OUTBOX_BROKER_BACKOFF_CAP_SECONDS", "5"))
# How a commit reaches the broker quickly: the relay process (`manage.py relay`, in the Procfile) is
# woken by NOTIFY and publishes in batches. OUTBOX_FAST_PATH=1 makes the committing process relay right
# after its own commit as well. Beat's relay every second is the safety net either way.
OUTBOX_FAST_PATH = env_bool("OUTBOX_FAST_PATH", False)
# Under load (a drain found more than a row per database) the relay process waits this long before its
# next drain, so that one drain publishes the rows of many commits in one batch; at light load it
# drains on every commit's NOTIFY at once.
OUTBOX_RELAY_GATHER_SECONDS = float(os.environ.get("OUTBOX_RELAY_GATHER_SECONDS", "0.01"))
# The relay process marks a drain's rows sent with its next claim, or alone after this long without one.
OUTBOX_RELAY_MARK_DELAY_SECONDS = float(os.environ.get("OUTBOX_RELAY_MARK_DELAY_SECONDS", "0.02"))
# The relay sends the events of one drain for one queue in messages of up to this many, each applied by
# the queue's batch consumer in one transaction (ticketing.outbox.consume.run_batch); 1 sends one
# message per event, consumed one transaction each.
CONSUMER_BATCH_SIZE = env_int("CONSUMER_BATCH_SIZE", 50)
CONSUMER_MAX_REDELIVERIES = env_int("CONSUMER_MAX_REDELIVERIES", 5)
CONSUMER_MAX_RETRIES = env_int("CONSUMER_MAX_RETRIES", 5)
CONSUMER_RETRY_BASE_SECONDS = float(os.environ.get("CONSUMER_RETRY_BASE_SECONDS", "1"))
CONSUMER_RETRY_CAP_SECONDS = float(os.environ.get("CONSUMER_RETRY_CAP_SECONDS", "60"))
# Tables that grow from nothing fast (ticketing/young_tables.py): autovacuum analyzes them early, and
# load_demo analyzes them after loading, so that a fresh database plans with statistics.
YOUNG_TABLES = [
    "accounts.User",
    "concerts.Seat",
    "concerts.Reservation",
    "concerts.ReservationSeat",
    "concerts.BookerLock",
    "payments.Wallet",
    "payments.WalletEntry",
    "payments.Payment",
    "idempotency.IdempotencyKey",
    "outbox.OutboxMessage",
    "outbox.InboxMessage",
]
RETENTION_SECONDS = env_int("RETENTION_SECONDS", 7 * 24 * 3600)
# Dead outbox rows, dead letters and dead redelivery records wait for an operator: kept longer.
DEAD_RETENTION_SECONDS = env_int("DEAD_RETENTION_SECONDS", 30 * 24 * 3600)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000)
# Batches per table and sweep (a sweep a minute): up to 100,000 rows a minute by default.
RETENTION_MAX_BATCHES = env_int("RETENTION_MAX_BATCHES", 100)
PAYMENTS_GATEWAY = os.environ.get("PAYMENTS_GATEWAY", "ticketing.payments.gateways.WalletGateway")

# --- Celery ----------------------------------------------------------------------------------------
# RabbitMQ in production (CELERY_BROKER_URL=amqp://...). Unset: the next database of REDIS_URL's Redis
# (kombu's redis transport; database 0 keeps the cache, which a cache.clear() may empty).


def next_redis_database(url: str) -> str:
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(number + 1) % 16}"))


CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or next_redis_database(REDIS_URL)
REDIS_BROKER = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
# On Redis a message taken by a worker waits in an "unacked" set until the task is acknowledged (late
# acks: after it ran). A worker that stops warmly puts its messages back at once; one killed outright
# leaves them there until the visibility timeout has passed, when any worker puts them back (swept every
# few seconds). The timeout must outlast any task and any countdown of a consumer's retry, or a message
# still in work would be delivered a second time (harmless: the inbox drops the repeat, but wasted).
REDIS_VISIBILITY_TIMEOUT_SECONDS = env_int("REDIS_VISIBILITY_TIMEOUT_SECONDS", 600)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 5,
        "socket_timeout": 10,
        "socket_connect_timeout": 2,
    }
    if REDIS_BROKER
    else {"confirm_publish": True}
)
if REDIS_BROKER and REDIS_VISIBILITY_TIMEOUT_SECONDS <= 2 * CONSUMER_RETRY_CAP_SECONDS:
    raise ImproperlyConfigured(
        "REDIS_VISIBILITY_TIMEOUT_SECONDS must be more than twice CONSUMER_RETRY_CAP_SECONDS (a retry's countdown)."
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "accounts"
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"


def every(seconds: float, task: str, queue: str, **kwargs: str) -> dict[str, Any]:
    # A beat entry; a run that waited longer than its own period is dropped, not piled up.
    return {
        "task": task,
        "schedule": seconds,
        "kwargs": kwargs,
        "options": {"queue": queue, "expires": max(seconds, 5)},
    }


CELERY_BEAT_SCHEDULE = {
    "concerts-sweep": every(env_int("SWEEP_INTERVAL_SECONDS", 5), "concerts.sweep", "concerts"),
    "audit-repair": every(60, "audit.repair", "accounts"),
    "accounts-tokens-expire": every(3600, "accounts.tokens_expire", "accounts"),
}
for _service, _alias in SERVICE_DATABASES.items():
    CELERY_BEAT_SCHEDULE |= {
        # The safety net; the relay process (or the fast path) does the usual work within milliseconds.
        f"outbox-relay-{_alias}": every(1, "outbox.relay", _service, using=_alias),
        f"outbox-retention-{_alias}": every(60, "outbox.retention", _service, using=_alias),
        f"idempotency-expire-{_alias}": every(600, "idempotency.expire", _service, using=_alias),
    }

# --- The rest --------------------------------------------------------------------------------------
# The API speaks English; the shop's pages speak Korean unless the visitor switches (ticketing.shop.i18n).
LANGUAGE_CODE = "en"
LANGUAGES = [("ko", "한국어"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "ticketing" / "shop" / "locale"]  # first, so the shop's words win over Django's
TIME_ZONE = "Asia/Seoul"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
LOGIN_URL = "shop:login"
LOGIN_REDIRECT_URL = "shop:concerts"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# --- Observability ---------------------------------------------------------------------------------
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_GAUGE_SECONDS = float(os.environ.get("METRICS_GAUGE_SECONDS", "5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "saga": {"()": "ticketing.observability.logging.SagaContextFilter"},
        "quiet": {"()": "ticketing.observability.logging.QuietHousekeeping"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(saga)s"},
        "json": {"()": "ticketing.observability.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("LOG_FORMAT") == "json" else "plain",
            "filters": ["saga", "quiet"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
