"""`sau notify-dispatch`: deliver the due notifications once (the scheduler does it every NOTIFY_DISPATCH_SECONDS)."""
from __future__ import annotations

import click
from flask import Flask


def register(app: Flask) -> None:
    @app.cli.command("notify-dispatch")
    @click.option("--limit", type=int, default=None, help="Deliver at most this many notifications.")
    def notify_dispatch(limit: int | None) -> None:
        """Deliver the notifications that are due (e-mails, webhooks), with retries and dead-letter."""
        from sau.clock import now_utc
        from sau.notify.dispatcher import dispatch_due

        result = dispatch_due(now_utc(), limit=limit)
        click.echo(f"Notifications : {result.sent} envoyée(s), {result.failed} en échec (nouvel essai prévu), "
                   f"{result.dead} abandonnée(s)")
