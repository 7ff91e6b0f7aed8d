"""Minimal Django project serving django-helpdesk for the peer benchmark (bench/peer_compare.py).

Production-like: DEBUG off, PostgreSQL (PEER_DATABASE_URL, a separate database of the benchmark's cluster),
CSRF on, database sessions (Django's default), persistent connections like SAU's pool. Not part of SAU.
"""
import os
from urllib.parse import urlparse

SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "peer-benchmark-secret-key-0123456789-abcdefghijklmnop")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "peerproject.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "peerproject.wsgi.application"

_url = urlparse(os.environ.get("PEER_DATABASE_URL", "postgresql://sau@127.0.0.1:5432/peer").replace("+psycopg", ""))
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": _url.path.lstrip("/"),
    "USER": _url.username or "",
    "PASSWORD": _url.password or "",
    "HOST": _url.hostname or "",
    "PORT": str(_url.port or ""),
    "CONN_MAX_AGE": 600,
}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LANGUAGE_CODE = "fr"
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
LOGIN_URL = "/login/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "WARNING"}}

HELPDESK_PUBLIC_ENABLED = True
HELPDESK_SUBMIT_A_TICKET_PUBLIC = True
HELPDESK_VIEW_A_TICKET_PUBLIC = True
HELPDESK_KB_ENABLED = True  # False breaks helpdesk.urls in 2.6.1 (NameError: kb)
HELPDESK_PUBLIC_TICKET_QUEUE = "aide"
HELPDESK_PUBLIC_TICKET_PRIORITY = 3
HELPDESK_REDIRECT_TO_LOGIN_BY_DEFAULT = False
HELPDESK_TEAMS_MODE_ENABLED = False
