"""Settings for SAU, read from environment variables.

Three classes: development (the default, embedded SQLite file, demo login), test, production.
`SAU_ENV` selects one. Every value can be overridden by an environment variable of the same name.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("SAU_INSTANCE_DIR", BASE_DIR / "instance"))


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on", "oui")


class BaseConfig:
    ENV_NAME = "base"
    SECRET_KEY = _env("SECRET_KEY", "dev-secret-key-change-me")
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'sau.sqlite3'}")
    # No `pool_pre_ping` round trip on every checkout: on PostgreSQL the app factory checks instead, without a
    # round trip, that a pooled connection's socket has nothing to read (a server that restarted or ended the
    # session has sent its FATAL message and closed it): such a connection is replaced before use
    # (sau/__init__.py, _drop_closed_connections). A connection lost silently is met by the request's first
    # statement: SQLAlchemy invalidates the pool and sau/resilience.py answers 503 + Retry-After. Set
    # DB_POOL_PRE_PING=1 to ping anyway (e.g. behind a connection pooler that keeps client sockets open).
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict[str, object]] = {"pool_pre_ping": _env_bool("DB_POOL_PRE_PING", False)}
    # Public base URL used in every link sent outside the app (e-mails, webhooks, tracking links).
    PUBLIC_URL = _env("PUBLIC_URL", "http://127.0.0.1:5000")
    # Uploads: attachments are stored on disk, outside the database.
    ATTACHMENTS_DIR = _env("ATTACHMENTS_DIR", str(INSTANCE_DIR / "attachments"))
    MAX_ATTACHMENT_BYTES = _env_int("MAX_ATTACHMENT_BYTES", 5 * 1024 * 1024)
    MAX_ATTACHMENTS = _env_int("MAX_ATTACHMENTS", 3)
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 16 * 1024 * 1024)
    MAX_JSON_BYTES = _env_int("MAX_JSON_BYTES", 64 * 1024)
    # Workflow: how long after resolution the requester may reopen (calendar days).
    REOPEN_WINDOW_DAYS = _env_int("REOPEN_WINDOW_DAYS", 15)
    # Sessions (Flask-Login); Secure cookies in production.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    # Absolute timeout: a session ends this long after sign-in whatever the activity; idle timeout below.
    PERMANENT_SESSION_LIFETIME = timedelta(hours=_env_int("SESSION_ABSOLUTE_HOURS", 12))
    SESSION_IDLE_MINUTES = _env_int("SESSION_IDLE_MINUTES", 30)
    WTF_CSRF_TIME_LIMIT = None  # bounded by the session lifetime instead
    DEV_LOGIN = False
    # Rate limits (Flask-Limiter syntax).
    # sau-memory:// is memory:// (per worker process) without a timer thread per hit (sau/extensions.py).
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "sau-memory://")
    RATELIMIT_HELP_FORM = _env("RATELIMIT_HELP_FORM", "20 per minute")
    RATELIMIT_SIGN_IN = _env("RATELIMIT_SIGN_IN", "10 per minute")
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    # Mail (used by notifications).
    SMTP_HOST = _env("SMTP_HOST")
    SMTP_PORT = _env_int("SMTP_PORT", 25)
    SMTP_USERNAME = _env("SMTP_USERNAME")
    SMTP_PASSWORD = _env("SMTP_PASSWORD")
    SMTP_SECURITY = _env("SMTP_SECURITY", "none")
    SMTP_CA_FILE = _env("SMTP_CA_FILE")  # CA bundle (PEM) for the server certificate; unset: the system CAs
    MAIL_FROM = _env("MAIL_FROM", "SAU Métropole de Lyon <sau@grandlyon.example>")
    SMTP_TIMEOUT = _env_int("SMTP_TIMEOUT", 10)
    # Notification outbox: retries with exponential backoff, dead-letter after NOTIFY_MAX_ATTEMPTS attempts.
    # Scheduled maintenance: référents are reminded this many hours before it starts (convention art. 6.1).
    MAINTENANCE_REMINDER_HOURS = float(_env("MAINTENANCE_REMINDER_HOURS", "48") or 48)
    # Availability: a partial outage counts for this share of its duration (sla/availability.py).
    AVAILABILITY_PARTIAL_WEIGHT = float(_env("AVAILABILITY_PARTIAL_WEIGHT", "0.5") or 0.5)
    # Open data (/donnees-ouvertes): complete months published, and the snapshot's maximum age before the
    # hourly scheduler job rebuilds it (sau/reports/opendata.py).
    OPENDATA_MONTHS = _env_int("OPENDATA_MONTHS", 24)
    OPENDATA_REFRESH_HOURS = float(_env("OPENDATA_REFRESH_HOURS", "24") or 24)
    # Extra mailboxes alerted at once on a commune's security alert (annex § 8), beside the Métropole's managers.
    SECURITY_CONTACT_EMAILS = tuple(e.strip() for e in (_env("SECURITY_CONTACT_EMAILS", "") or "").split(",") if e.strip())
    NOTIFY_MAX_ATTEMPTS = _env_int("NOTIFY_MAX_ATTEMPTS", 8)
    NOTIFY_BACKOFF_SECONDS = _env_int("NOTIFY_BACKOFF_SECONDS", 60)
    NOTIFY_BACKOFF_MAX_SECONDS = _env_int("NOTIFY_BACKOFF_MAX_SECONDS", 6 * 3600)
    NOTIFY_BATCH_SIZE = _env_int("NOTIFY_BATCH_SIZE", 500)
    NOTIFY_DISPATCH_SECONDS = _env_int("NOTIFY_DISPATCH_SECONDS", 30)
    # How often new requests' notifications are worked out (sau.notify.models.NotificationFanout), in seconds.
    NOTIFY_FANOUT_SECONDS = _env_int("NOTIFY_FANOUT_SECONDS", 5)
    NOTIFY_WEBHOOK_TIMEOUT = _env_int("NOTIFY_WEBHOOK_TIMEOUT", 10)
    # OpenID Connect (usagers; agents may use a second provider with the OIDC_AGENTS_ prefix).
    OIDC_ISSUER = _env("OIDC_ISSUER")
    OIDC_CLIENT_ID = _env("OIDC_CLIENT_ID")
    OIDC_CLIENT_SECRET = _env("OIDC_CLIENT_SECRET")
    OIDC_ID_TOKEN_ALGS = _env("OIDC_ID_TOKEN_ALGS", "HS256")
    OIDC_TOKEN_AUTH_METHOD = _env("OIDC_TOKEN_AUTH_METHOD", "client_secret_basic")  # or client_secret_post
    OIDC_LABEL = _env("OIDC_LABEL", "GrandLyon Connect")
    OIDC_AGENTS_ISSUER = _env("OIDC_AGENTS_ISSUER")
    OIDC_AGENTS_CLIENT_ID = _env("OIDC_AGENTS_CLIENT_ID")
    OIDC_AGENTS_CLIENT_SECRET = _env("OIDC_AGENTS_CLIENT_SECRET")
    OIDC_AGENTS_ID_TOKEN_ALGS = _env("OIDC_AGENTS_ID_TOKEN_ALGS", "RS256")
    OIDC_AGENTS_TOKEN_AUTH_METHOD = _env("OIDC_AGENTS_TOKEN_AUTH_METHOD", "client_secret_basic")
    OIDC_AGENTS_LABEL = _env("OIDC_AGENTS_LABEL", "Compte agent")
    OIDC_SCOPES = _env("OIDC_SCOPES", "openid profile email")
    # Clock skew tolerated on exp/iat (seconds) and timeout of every call to a provider.
    OIDC_LEEWAY_SECONDS = _env_int("OIDC_LEEWAY_SECONDS", 60)
    OIDC_HTTP_TIMEOUT = _env_int("OIDC_HTTP_TIMEOUT", 10)
    # SLA policy (Toodego annex § 6.1.a): "à risque" from this share of the target; the convention's strict
    # reading does not pause the clock while waiting for the requester; a change of priority keeps the start.
    SLA_AT_RISK_RATIO = float(_env("SLA_AT_RISK_RATIO", "0.75") or 0.75)
    SLA_PAUSE_WHILE_WAITING = _env_bool("SLA_PAUSE_WHILE_WAITING", False)
    SLA_PRIORITY_CHANGE = _env("SLA_PRIORITY_CHANGE", "keep_start")
    SLA_SWEEP_SECONDS = _env_int("SLA_SWEEP_SECONDS", 60)
    # Scheduler inside the web process (embedded default) or in its own process (production).
    SCHEDULER_ENABLED = _env_bool("SCHEDULER_ENABLED", False)
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    # Personal data (issue 8, sau/privacy/retention.py): accounts unused for two years are deleted (Toodego annex
    # § 8), after a warning e-mail this many days before; closed tickets are anonymised after a retention period;
    # the (issuer, sub) of deleted accounts are listed to connectors for a year.
    ACCOUNT_INACTIVITY_DAYS = _env_int("ACCOUNT_INACTIVITY_DAYS", 730)
    ACCOUNT_DELETION_WARNING_DAYS = _env_int("ACCOUNT_DELETION_WARNING_DAYS", 30)
    RETENTION_CLOSED_TICKETS_DAYS = _env_int("RETENTION_CLOSED_TICKETS_DAYS", 365)
    DELETED_ACCOUNTS_RETENTION_DAYS = _env_int("DELETED_ACCOUNTS_RETENTION_DAYS", 365)
    RETENTION_RUN_HOURS = _env_int("RETENTION_RUN_HOURS", 24)
    # Production behind a load balancer: number of proxies whose X-Forwarded-* headers are trusted (sau/wsgi.py).
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)
    # Access log (issue 8, point 5): entries older than this are purged daily by the scheduler (0: keep all).
    ACCESS_LOG_RETENTION_DAYS = _env_int("ACCESS_LOG_RETENTION_DAYS", 365)


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"
    DEV_LOGIN = _env_bool("DEV_LOGIN", True)
    # The embedded default runs the scheduler inside the web process.
    SCHEDULER_ENABLED = _env_bool("SCHEDULER_ENABLED", True)


class TestConfig(BaseConfig):
    ENV_NAME = "test"
    TESTING = True
    DEV_LOGIN = True
    SECRET_KEY = "test-secret-key-not-for-production-0123456789"
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", "sqlite://")
    RATELIMIT_ENABLED = False
    PUBLIC_URL = "http://sau.test"


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    DEV_LOGIN = _env_bool("DEV_LOGIN", False)
    SCHEDULER_ENABLED = _env_bool("SCHEDULER_ENABLED", False)


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


class ConfigError(RuntimeError):
    """Raised at start-up when the configuration is unsafe or incomplete."""


def get_config(name: str | None = None) -> type[BaseConfig]:
    """Return the settings class for `name` (or `SAU_ENV`, default development)."""
    name = name or os.environ.get("SAU_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"SAU_ENV inconnu : {name!r} (attendu : {', '.join(CONFIGS)})") from None


OIDC_ALLOWED_ALGS = frozenset({"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
OIDC_PREFIXES = ("OIDC_", "OIDC_AGENTS_")


def oidc_problems(config: dict[str, object]) -> list[str]:
    """What is wrong with the OpenID Connect settings (any environment): half-configured providers, unknown
    algorithms or `none`."""
    problems = []
    for prefix in OIDC_PREFIXES:
        issuer, client_id = config.get(f"{prefix}ISSUER"), config.get(f"{prefix}CLIENT_ID")
        if not (issuer or client_id):
            continue
        if not (issuer and client_id and config.get(f"{prefix}CLIENT_SECRET")):
            problems.append(f"{prefix}ISSUER, {prefix}CLIENT_ID et {prefix}CLIENT_SECRET vont ensemble")
        algs = [a.strip() for a in str(config.get(f"{prefix}ID_TOKEN_ALGS") or "").split(",") if a.strip()]
        if not algs:
            problems.append(f"{prefix}ID_TOKEN_ALGS est vide")
        unknown = [a for a in algs if a not in OIDC_ALLOWED_ALGS]
        if unknown:
            problems.append(f"{prefix}ID_TOKEN_ALGS contient des algorithmes refusés : {', '.join(unknown)}")
        method = config.get(f"{prefix}TOKEN_AUTH_METHOD") or "client_secret_basic"
        if method not in ("client_secret_basic", "client_secret_post"):
            problems.append(f"{prefix}TOKEN_AUTH_METHOD doit valoir client_secret_basic ou client_secret_post")
    return problems


def validate(config: dict[str, object]) -> None:
    """Refuse unsafe settings: inconsistent OpenID Connect settings anywhere; in production also the
    development login, a default or short SECRET_KEY, or no OpenID Connect. Raises ConfigError."""
    problems = oidc_problems(config)
    if config.get("ENV_NAME") == "production":
        secret = str(config.get("SECRET_KEY") or "")
        # The literal default only: BaseConfig.SECRET_KEY holds the environment's value when SECRET_KEY is set.
        if secret == "dev-secret-key-change-me" or len(secret) < 32:
            problems.append("SECRET_KEY doit être défini et faire au moins 32 caractères")
        if config.get("DEV_LOGIN"):
            problems.append("la connexion de démonstration (DEV_LOGIN) est interdite en production")
        if not (config.get("OIDC_ISSUER") and config.get("OIDC_CLIENT_ID") and config.get("OIDC_CLIENT_SECRET")):
            problems.append("OpenID Connect doit être configuré (OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET)")
        if not config.get("SESSION_COOKIE_SECURE"):
            problems.append("les cookies de session doivent être Secure (SESSION_COOKIE_SECURE)")
    if problems:
        label = "de production " if config.get("ENV_NAME") == "production" else ""
        raise ConfigError(f"Configuration {label}refusée : " + " ; ".join(problems))
