"""invsync settings, all read from the environment (django-environ).

With no environment at all the project runs on a laptop: SQLite under ``var/``, django-q2's ORM
broker, DEBUG on and a development secret. Production sets ``DJANGO_DEBUG=false`` and the variables
listed in the README.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("INVSYNC_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
_DEV_SECRET = "invsync-development-only-secret-key-do-not-use-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET if DEBUG else None)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS in production (DEBUG off): secure cookies, redirect to HTTPS, HSTS. Behind a proxy that
# terminates TLS, set DJANGO_SECURE_PROXY_SSL_HEADER=true (it must set X-Forwarded-Proto).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Credentials at rest: Fernet keys, newest first. Without any, a key is derived from SECRET_KEY,
# which is fine on a laptop and refused by the deploy check (connectors.checks).
CREDENTIALS_KEYS = env.list("INVSYNC_CREDENTIALS_KEYS", default=[])

INSTALLED_APPS = [
    # Django's admin, with invsync's site: its home page for the work (invsync/admin_site.py).
    "invsync.apps.InvsyncAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "social_django",
    "django_q",
    "connectors",
    "mappings",
    "syncs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The user's language: the one chosen with the admin's switch (a cookie), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "invsync.middleware.RejectNulInQueryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "invsync.middleware.RequireStaffTOTPMiddleware",
    "mappings.audit.AuditActorMiddleware",
]

ROOT_URLCONF = "invsync.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

WSGI_APPLICATION = "invsync.wsgi.application"
ASGI_APPLICATION = "invsync.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'invsync.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the django-q2 cluster share the file: wait for locks rather than fail,
    # and take the write lock at BEGIN so two writers never deadlock on an upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Each web process and each django-q2 worker keeps its connection for a while instead of
    # opening one per request or task, and checks it before reuse, so that a restarted server or a
    # dropped connection costs a reconnect, not an error. `?conn_max_age=` in the URL wins;
    # `?conn_health_checks=false` turns the checks off (django-environ hands it over as a string).
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = str(
        DATABASES["default"].get("CONN_HEALTH_CHECKS", True)
    ).lower() not in ("false", "0", "off")
# allauth's sign-in rate limits and used TOTP codes live in the cache: one process on a laptop;
# production with several web processes sets a shared one (e.g. redis://127.0.0.1:6379/1).
CACHES = {"default": env.cache("DJANGO_CACHE_URL", default="locmemcache://")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sign-in (django-allauth): email and password, then a TOTP code for users who activated one.
# The admin's own login page sends to allauth's, so there is one sign-in. No open sign-up: the firm
# adds its staff in the admin (invsync.adapters.AccountAdapter).
ACCOUNT_ADAPTER = "invsync.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
# Failed sign-ins: 10 a minute per IP address, 5 per 5 minutes per email (allauth counts them in
# the cache, so several web processes need a shared DJANGO_CACHE_URL).
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/admin/"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_ADAPTER = "invsync.adapters.MFAAdapter"  # TOTP secrets encrypted at rest
MFA_TOTP_ISSUER = "invsync"
# allauth refuses two-factor to an account with an unverified email, against someone signing up
# with another's address; sign-up is closed here and the firm enters its staff's addresses.
MFA_ALLOW_UNVERIFIED_EMAIL = True
# When true, staff users must activate a TOTP authenticator before they reach the admin.
INVSYNC_REQUIRE_2FA_FOR_STAFF = env.bool("INVSYNC_REQUIRE_2FA_FOR_STAFF", default=False)
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)

# The interface in English and French (locale/fr/LC_MESSAGES/django.po; the .mo is committed and
# tests/unit/test_translations.py checks it matches). Dates and numbers follow the language.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The language chosen with the switch stays a year (Django's set_language view sets the cookie).
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
# Files invsync receives (the e-invoice inbox), through Django's storage API: local under
# MEDIA_ROOT by default (never served by URL). An S3-compatible bucket: add a storage named
# "invsync_inbox" to STORAGES (docs/einvoices.md).
MEDIA_ROOT = Path(env.str("INVSYNC_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# django-q2. The ORM broker needs nothing else; REDIS_URL switches to Redis for many workers.
# `timeout` (a task is killed after it) must stay below `retry` (an unacknowledged task is handed
# out again after it), or a long sync would be started a second time while the first still runs.
Q_TIMEOUT = env.int("INVSYNC_TASK_TIMEOUT", default=1800)
Q_CLUSTER = {
    "name": "invsync",
    "workers": env.int("INVSYNC_Q_WORKERS", default=2),
    "timeout": Q_TIMEOUT,
    "retry": env.int("INVSYNC_TASK_RETRY", default=Q_TIMEOUT + 300),
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Background tasks",
    "sync": env.bool("INVSYNC_Q_SYNC", default=False),
}
if env.str("REDIS_URL", default=""):
    Q_CLUSTER["redis"] = env.str("REDIS_URL")
else:
    Q_CLUSTER["orm"] = "default"

# How long a flow's run lease lives without a heartbeat (a dead worker's lease expires then).
INVSYNC_RUN_LEASE_SECONDS = env.int("INVSYNC_RUN_LEASE_SECONDS", default=300)
# Invoices written per target call where the target takes batches.
INVSYNC_BATCH_SIZE = env.int("INVSYNC_BATCH_SIZE", default=50)
# Where connections' rate-limit windows live (connectors/ratelimit.py): "auto" (the database,
# shared by every worker and host; one window per process for an in-memory SQLite database),
# "database" or "process".
INVSYNC_RATE_LIMIT_STORE = env.str("INVSYNC_RATE_LIMIT_STORE", default="auto")
# Where calls to the vendors' tools may go (connectors/outbound.py): public addresses, plus these
# networks (10.0.0.0/8), addresses and host names (tryton.internal), checked on every address a
# name resolves to, at connect time. A self-hosted tool on a private network must be listed. On a
# laptop (DEBUG on) loopback is allowed by default, so that a local Tryton (the demo) is reached;
# in production nothing but public addresses unless listed. Empty: public addresses only.
INVSYNC_OUTBOUND_ALLOWED_NETWORKS = env.list(
    "INVSYNC_OUTBOUND_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"] if DEBUG else []
)

# OAuth2 connections (connectors/oauth_backends.py): the firm's OAuth app at each vendor,
# INVSYNC_OAUTH_<VENDOR>_CLIENT_ID and _CLIENT_SECRET (a connection may carry its own app's
# instead), _BASE_URL (replaces the vendor's address: tests and the dev sandbox point it at
# connectors/devtools/oauth_server.py) and _SCOPES (space-separated; default: the backend's).
INVSYNC_OAUTH_VENDORS = ("pennylane", "xero", "stripe")
INVSYNC_OAUTH = {
    vendor: {
        name: env.str(f"INVSYNC_OAUTH_{vendor.upper()}_{name.upper()}", default="")
        for name in ("client_id", "client_secret", "base_url", "scopes")
    }
    for vendor in INVSYNC_OAUTH_VENDORS
}

# Error reports (the DEBUG page too) never show a typed secret: invsync/error_reports.py.
DEFAULT_EXCEPTION_REPORTER_FILTER = "invsync.error_reports.SecretsExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django": {"level": "INFO"}, "urllib3": {"level": "WARNING"}},
}
