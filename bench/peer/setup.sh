#!/usr/bin/env bash
# Benchmark-only environment for the peer, django-helpdesk (never part of the SAU package or `make test`).
#
#     bash bench/peer/setup.sh
#
# Creates bench/peer/.venv with django-helpdesk, gunicorn and psycopg from PyPI. The Django project that
# serves it is bench/peer/project/ (settings read PEER_DATABASE_URL); bench/peer_compare.py drives it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$(bash "$here/../../scripts/find-python.sh")"  # the interpreter SAU's own venv is made with (Makefile)
if [ ! -x "$here/.venv/bin/python" ]; then
    "$py" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --upgrade pip
"$here/.venv/bin/python" -m pip install --quiet "django-helpdesk==2.6.1" "gunicorn>=22,<24" "psycopg[binary]>=3.1,<4"
"$here/.venv/bin/python" -c "import django, helpdesk; print('django', django.get_version(), '/ django-helpdesk installed')"
