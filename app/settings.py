"""Django settings, from environment variables and the cluster config.

Environment:
  MARKETPLACE_ENV      production (the default) or development (make run and make test set it)
  DJANGO_SECRET_KEY    required in production
  DJANGO_DEBUG         1/0, default 1 in development, 0 in production
  DJANGO_ALLOWED_HOSTS comma-separated; required in production, default 127.0.0.1,localhost in development
  CLUSTER_NAME         which local cluster to use (default dev); or
  CLUSTER_CONFIG       the path of a cluster.json; or
  CLUSTER_COORDINATOR_URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE, the coordinator only (containers),
                       with CLUSTER_LOGICAL_SHARDS (default 64)
  SHARDING_ENGINE      own or citus (default: the engine the cluster config records, else own)
  DB_DIRECT            1 to connect straight to PostgreSQL instead of each node's pgbouncer
  NUM_PROXIES          trusted proxies in front of the app (default 0: the client is REMOTE_ADDR)
  THROTTLE_RATE_<SCOPE> rate limits, e.g. THROTTLE_RATE_LOGIN_ADDRESS=20/min (see THROTTLE_RATES)
"""
import os
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF

from app.core.startup import StartupConfigError
from sharding.config import config_from_environment, database_settings, default_config_path, load_cluster_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name, default):
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


# Fail closed: without MARKETPLACE_ENV this is production (DEBUG off, a secret key and hosts required).
# Development is chosen explicitly (make run, make test, tests/settings.py).
ENVIRONMENT = os.environ.get("MARKETPLACE_ENV", "").strip().lower() or "production"
if ENVIRONMENT not in ("production", "development"):
    raise StartupConfigError(f"MARKETPLACE_ENV must be production or development, not {ENVIRONMENT!r}")
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_flag("DJANGO_DEBUG", not PRODUCTION)

if PRODUCTION:
    _missing = [name for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS") if not os.environ.get(name, "").strip()]
    if _missing:
        raise StartupConfigError(
            f"production settings (MARKETPLACE_ENV={os.environ.get('MARKETPLACE_ENV') or 'unset, so production'}) "
            f"need {' and '.join(_missing)}: set {', '.join(f'{name}=...' for name in _missing)}, "
            "or MARKETPLACE_ENV=development for a local development run"
        )
    SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "development-only-key-never-used-in-production")

if PRODUCTION:
    # Behind TLS: cookies only over HTTPS, HSTS, and plain HTTP redirected.
    SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_flag("DJANGO_HSTS_PRELOAD", True)
    # Health probes (the image's HEALTHCHECK, load balancers) ask over plain HTTP from inside.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    if env_flag("DJANGO_BEHIND_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, fonts and connections from the app's own origin only;
# no inline script or style anywhere (the templates load static files; Swagger UI at /api/docs/ gets its
# set-up script from the same view, app.core.views.SwaggerUIView). data: images are the SVG icons of
# Swagger UI's stylesheet.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # blob: the previews of photos chosen on the sell and edit pages (app/web/static/web/photos.js);
        # MEDIA_ORIGIN: photos on object storage (below).
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "app.core",
    "app.web",  # the server-rendered pages (before django.contrib.admin, so its templates win)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",  # API tokens (app.accounts.models.AuthToken)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from STATIC_URL (no CDN)
    "csp",
    "sharding",
    "app.accounts",
    "app.wallet",
    "app.catalog",
    "app.orders",
    "app.partners",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "sharding.middleware.RequestDeadlineMiddleware",
    "sharding.middleware.FreshPlacementMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files, in production too
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "app.core.middleware.ErrorResponseMiddleware",
]

ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "app" / "templates"],
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

# The cluster: coordinator = `default`, workers = `worker1` ... `workerN`.
CLUSTER_CONFIG = config_from_environment() or load_cluster_config(default_config_path(BASE_DIR))
DATABASES = database_settings(CLUSTER_CONFIG, direct=env_flag("DB_DIRECT", False))
DATABASE_ROUTERS = ["sharding.db_router.ShardRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SHARDING = {
    # `own` (our routing layer and two-phase commit) or `citus` (a Citus coordinator does both): $SHARDING_ENGINE,
    # else the engine the cluster config records (sharding.config.app_view).
    "ENGINE": CLUSTER_CONFIG["engine"],
    "LOGICAL_SHARDS": CLUSTER_CONFIG["logical_shards"],
    # Workers learned from the catalogue are reached like the others: directly, or through their pgbouncer.
    "DIRECT_CONNECTIONS": env_flag("DB_DIRECT", False),
    # Seconds a process trusts its cached placement map before checking the version.
    "PLACEMENT_TTL": float(os.environ.get("SHARDING_PLACEMENT_TTL", "5")),
    # Parallel fan-out: threads per process and the per-node time limit in seconds.
    "FANOUT_POOL_SIZE": int(os.environ.get("SHARDING_FANOUT_POOL_SIZE", "16")),
    "FANOUT_TIMEOUT": float(os.environ.get("SHARDING_FANOUT_TIMEOUT", "5")),
    # Two-phase commit: lock_timeout on every participant, the gid prefix of our
    # prepared transactions, and how old an in-doubt one must be before recovery settles it.
    "LOCK_TIMEOUT_MS": int(os.environ.get("SHARDING_LOCK_TIMEOUT_MS", "2000")),
    "GID_PREFIX": "mkt",
    "RECOVERY_GRACE_SECONDS": float(os.environ.get("SHARDING_RECOVERY_GRACE_SECONDS", "10")),
    "RECOVERY_INTERVAL_SECONDS": float(os.environ.get("SHARDING_RECOVERY_INTERVAL_SECONDS", "5")),
    # A node that failed is probed this often; until it answers, requests that need it fail at once (503).
    "BREAKER_PROBE_SECONDS": float(os.environ.get("SHARDING_BREAKER_PROBE_SECONDS", "1")),
    # A request's transactions send no statement after this many seconds (a 503 instead; 0: no deadline), and
    # their lock waits end by then: a slow node or a row locked by an in-doubt transaction costs a few seconds.
    "REQUEST_DEADLINE_SECONDS": float(os.environ.get("SHARDING_REQUEST_DEADLINE_SECONDS", "4")),
    # Failpoints let tests crash a two-phase commit at chosen moments; never in production.
    "FAILPOINTS": False,
}


def throttle_rate(scope, default):
    """THROTTLE_RATE_<SCOPE> from the environment, e.g. "20/min", "100/hour"."""
    return os.environ.get(f"THROTTLE_RATE_{scope.upper()}", default)


# Rate limits (app.core.throttling), counted in the shared cache below.
THROTTLE_RATES = {
    # Log-in attempts per username (API, web and admin forms together) and per client address.
    "login": throttle_rate("login", os.environ.get("LOGIN_THROTTLE_RATE", "10/min")),
    "login_address": throttle_rate("login_address", "20/min"),
    # Password changes per user (each checks the old password: a stolen session or token must not guess it)
    # and reset emails per client address and per email address.
    "password_change": throttle_rate("password_change", "10/hour"),
    "password_reset": throttle_rate("password_reset", "5/hour"),
    # Every API request: per client address when not logged in, per user when logged in.
    "anon": throttle_rate("anon", "60/min"),
    "user": throttle_rate("user", "300/min"),
    # And on top of that, per user (or address when not logged in) for what costs the most.
    "register": throttle_rate("register", "10/hour"),  # an Argon2 hash each (about 100 MiB)
    "search": throttle_rate("search", "60/min"),  # a fan-out to every worker each
    "deposit": throttle_rate("deposit", "30/min"),
    "purchase": throttle_rate("purchase", "30/min"),
    "listing": throttle_rate("listing", "30/min"),  # creating a listing
    "photo": throttle_rate("photo", "60/min"),  # uploading a photo (each is decoded and re-encoded twice)
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "app.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["app.core.parsers.JSONObjectParser"],  # JSON objects only (app/core/parsers.py)
    "EXCEPTION_HANDLER": "app.core.errors.exception_handler",
    # Views name their scope (throttle_scope, or throttle_scopes by method) for ScopedRateThrottle.
    "DEFAULT_THROTTLE_CLASSES": [
        "app.core.throttling.AnonRateThrottle",
        "app.core.throttling.UserRateThrottle",
        "app.core.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": THROTTLE_RATES,
    # Rate limits count clients by address. X-Forwarded-For is trusted only through this many proxies of our own
    # (each appends the address it saw); 0 uses REMOTE_ADDR and ignores the header, which any client can write.
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")),
    "DEFAULT_SCHEMA_CLASS": "app.core.openapi.AutoSchema",  # drf-spectacular's, with the 429s
}

# API tokens: django-rest-knox with our own model (a last-used time); one token per login, only its digest stored.
KNOX_TOKEN_MODEL = "accounts.AuthToken"
REST_KNOX = {
    "TOKEN_MODEL": KNOX_TOKEN_MODEL,
    "AUTH_HEADER_PREFIX": "Token",  # clients send `Authorization: Token <token>`, as before
    "TOKEN_TTL": timedelta(days=float(os.environ.get("API_TOKEN_TTL_DAYS", "30"))),
    "AUTO_REFRESH": False,  # a fixed lifetime from the login
}
# knox's migrations make a table for its own token model, which ours replaces: none is needed.
MIGRATION_MODULES = {"knox": None}
# Tokens a user keeps (one per device or client); a login beyond that revokes the least recently used.
API_TOKENS_PER_USER = int(os.environ.get("API_TOKENS_PER_USER", "50"))

# The OpenAPI description at /api/schema/, browsable at /api/docs/ (manage.py spectacular --validate checks it).
SPECTACULAR_SETTINGS = {
    "TITLE": "Marketplace API",
    "VERSION": "1.0.0",
    "DESCRIPTION": """A peer-to-peer marketplace: wallets, listings, purchases, search and reports.

- **Authentication**: users send `Authorization: Token <key>` (from `POST /api/v1/auth/token`);
  partner stores send `Authorization: Api-Key <key>`. Endpoints marked with no security are open to anyone.
- **Ids** are strings of digits (64-bit ids do not fit a JavaScript number).
- **Money** is a decimal string with two places, such as `"12.50"` (USD).
- **Errors** all have one shape: `{"error": {"code": "...", "message": "...", "details": {...}}}`;
  each response lists its codes.
- **Lists** are pages `{"results": [...], "next": <cursor or null>}`: pass `next` back as `?cursor=`;
  `?page_size=` is 20 by default, at most 100.
- **Writes that move money** (`POST wallet/deposits`, `POST purchases`) need an `Idempotency-Key` header.
""",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",  # tags and operation ids from what follows: items, wallet, reports...
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,  # our choices are their own labels
    # /health/ is a plain Django view, which drf-spectacular does not see: the hook adds it.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "app.core.openapi.add_health"],
}

# Shared by every server process (rate limits): a table on the coordinator, Django's DatabaseCache with set() in
# one round trip. Maintenance deletes expired rows and, only beyond MAX_ENTRIES, those that expire soonest.
CACHES = {"default": {
    "BACKEND": "app.core.cache.DatabaseCache", "LOCATION": "cache_table",
    "KEY_FUNCTION": "app.core.cache.make_key",  # keys from user input may hold a NUL (app/core/cache.py)
    "OPTIONS": {"MAX_ENTRIES": int(os.environ.get("CACHE_MAX_ENTRIES", "1000000"))},
}}

MAINTENANCE_TASKS = [
    "app.core.idempotency.purge_expired_keys",
    "app.partners.auth.purge_rate_windows",
    "app.core.cache.cull_cache",
    "app.accounts.services.purge_expired_tokens",
    "app.partners.webhooks.run_webhooks",
    "app.catalog.services.purge_orphan_files",  # photo files whose row is gone (at most every hour)
]

# The most one user may deposit per UTC day, in minor units (1000000 = 10,000.00); checked with the wallet locked.
DAILY_DEPOSIT_LIMIT = int(os.environ.get("DAILY_DEPOSIT_LIMIT", "1000000"))

# Requests per API key, shared by every server process ("60/min", "1000/hour").
PARTNER_RATE_LIMIT = os.environ.get("PARTNER_RATE_LIMIT", "60/min")

# Partner webhooks (app.partners.webhooks), sent by `manage.py maintenance`. Every WEBHOOK_* setting is here.
# Webhooks go to public addresses only (a name is resolved at each send, every address checked, and the checked
# one connected to). Development and tests deliver to receivers on 127.0.0.1: only there is this on by default.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_flag("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", not PRODUCTION)
# In production webhooks go to these ports only (comma-separated).
WEBHOOK_ALLOWED_PORTS = tuple(int(p) for p in os.environ.get("WEBHOOK_ALLOWED_PORTS", "443,80").split(",") if p.strip())
# A delivery that failed this many times is given up (marked failed); retries wait ~2**attempts s, at most an hour.
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "12"))
# An endpoint that fails this many times in a row (over all its deliveries) is disabled.
WEBHOOK_DISABLE_AFTER = int(os.environ.get("WEBHOOK_DISABLE_AFTER", "20"))
# A delivery run stops starting POSTs after this many seconds, so maintenance is never held up for long.
WEBHOOK_RUN_SECONDS = float(os.environ.get("WEBHOOK_RUN_SECONDS", "10"))
# Seconds a run's claim on its deliveries lasts at least (it is stretched to cover the run and one more POST).
WEBHOOK_LEASE_SECONDS = float(os.environ.get("WEBHOOK_LEASE_SECONDS", "60"))
# Endpoints POSTed to in parallel by one run (each endpoint's deliveries still go one after the other).
WEBHOOK_CONCURRENCY = int(os.environ.get("WEBHOOK_CONCURRENCY", "8"))
# The most bytes of a receiver's answer that are read.
WEBHOOK_RESPONSE_MAX_BYTES = int(os.environ.get("WEBHOOK_RESPONSE_MAX_BYTES", "65536"))

# /health/ shows its details (nodes, latencies, in-doubt transactions, shard moves) only to staff and to requests
# with `Authorization: Bearer <this token>`; unset, only staff see them.
HEALTH_MONITORING_TOKEN = os.environ.get("HEALTH_MONITORING_TOKEN", "").strip()

# Where the site is reachable: links in the partner feed and webhooks point here.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# The web pages (app.web): session login.
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:dashboard"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule: revokes the user's API tokens whenever a password changes (see the module).
    {"NAME": "app.accounts.passwords.RevokeCredentialsOnPasswordChange"},
]
# A password-reset link works once, for this many seconds.
PASSWORD_RESET_TIMEOUT = int(os.environ.get("PASSWORD_RESET_TIMEOUT", "3600"))

# Email (password resets): printed to the console in development; SMTP from the environment in production.
if PRODUCTION:
    EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS", True)
    EMAIL_USE_SSL = env_flag("EMAIL_USE_SSL", False)
else:
    EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))  # a mail server that hangs must not hold a request
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Marketplace <no-reply@localhost>")
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Chart.js from npm (package.json; `make` runs `npm ci`), served as static/vendor/chart.js/chart.umd.min.js.
STATICFILES_DIRS = [("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist")]
# WhiteNoise serves STATIC_ROOT (filled by collectstatic) in production; in development, and in tests
# (which turn DEBUG off), it finds the apps' files itself, so STATIC_ROOT need not exist.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG

# Listing photos (app.catalog.images): Django's storage API. By default the local filesystem under MEDIA_ROOT
# (a persistent volume in production); MEDIA_STORAGE=s3 puts them in S3-compatible object storage through
# django-storages, for sites with several app servers. Django serves MEDIA_URL only in development
# (SERVE_MEDIA); in production a web server (MEDIA_ROOT) or the object storage serves it.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
MEDIA_URL = os.environ.get("MEDIA_URL", "/media/")
MEDIA_STORAGE = os.environ.get("MEDIA_STORAGE", "filesystem").strip().lower()
if MEDIA_STORAGE not in ("filesystem", "s3"):
    raise StartupConfigError(f"MEDIA_STORAGE must be filesystem or s3, not {MEDIA_STORAGE!r}")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    _bucket = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
    if not _bucket:
        raise StartupConfigError("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME=... (and credentials: "
                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the machine's role)")
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": _bucket,
        "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,  # another S3-compatible service
        "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
        "custom_domain": os.environ.get("AWS_S3_CUSTOM_DOMAIN") or None,  # a CDN in front of the bucket
        "querystring_auth": False,  # photos are public: plain URLs that partners and Google can fetch
        "file_overwrite": False,
        "default_acl": None,  # the bucket's policy makes photos/ readable
        "object_parameters": {"CacheControl": "public, max-age=31536000, immutable"},  # names never change
    }}
    # Where the pages load photos from, for the Content-Security-Policy (space-separated origins).
    _origins = os.environ.get("MEDIA_ORIGIN", "").split() or (
        [f"https://{os.environ['AWS_S3_CUSTOM_DOMAIN']}"] if os.environ.get("AWS_S3_CUSTOM_DOMAIN")
        else [os.environ["AWS_S3_ENDPOINT_URL"]] if os.environ.get("AWS_S3_ENDPOINT_URL")
        else ["https://s3.amazonaws.com", "https://*.amazonaws.com"])  # AWS's path- and virtual-host-style URLs
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"].extend(origin.rstrip("/") for origin in _origins)
SERVE_MEDIA = not PRODUCTION and MEDIA_STORAGE == "filesystem"
# A photo upload's file is kept in memory up to this size, beyond it in a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The maintenance clean-up of photo files whose row is gone: how often, and how old a file must be first.
PHOTO_CLEANUP_INTERVAL_SECONDS = float(os.environ.get("PHOTO_CLEANUP_INTERVAL_SECONDS", "3600"))
PHOTO_CLEANUP_GRACE_SECONDS = float(os.environ.get("PHOTO_CLEANUP_GRACE_SECONDS", "3600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "sharding": {"handlers": ["console"], "level": os.environ.get("SHARDING_LOG_LEVEL", "INFO")},
        # Django sends 5xx tracebacks to the console only with DEBUG on: in production they would go nowhere.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
