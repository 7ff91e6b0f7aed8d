"""WSGI entry point for production servers: `gunicorn -c deploy/gunicorn.conf.py` serves `sau.wsgi:app`.

Behind a load balancer or reverse proxy, set TRUSTED_PROXIES to the number of proxies in front of the app:
the client address (used by the rate limits and the logs) and the scheme are then taken from the
X-Forwarded-For / X-Forwarded-Proto / X-Forwarded-Host headers those proxies set — never trust more hops
than you have, or clients could choose their own address.
"""
from __future__ import annotations

from werkzeug.middleware.proxy_fix import ProxyFix

from sau import create_app
from sau.preload import warm_up

app = create_app()
warm_up(app)
_hops = int(app.config.get("TRUSTED_PROXIES", 0) or 0)
if _hops > 0:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=_hops, x_proto=_hops, x_host=_hops)  # type: ignore[method-assign]
