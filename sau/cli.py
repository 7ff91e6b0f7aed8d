"""Command line: `sau` is the Flask CLI of the app (`sau run`, `sau db upgrade`, and the commands below)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup

from sau.clock import now_utc
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.notify.cli import register as register_notify_cli


def register_cli(app: Flask) -> None:
    @app.cli.command("load-reference")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def load_reference(path: Path) -> None:
        """Load reference data (organisations, services, subscriptions, schools, rules, FAQ, users) from JSON."""
        from sau.orgs.loader import load_file

        try:
            counts = load_file(path, now_utc())
        except (ValidationFailed, KeyError, ValueError) as exc:
            db.session.rollback()
            raise click.ClickException(f"données de référence refusées : {exc}") from None
        db.session.commit()
        click.echo("Données chargées : " + (", ".join(f"{k} +{v}" for k, v in sorted(counts.items())) or "rien de neuf"))

    @app.cli.command("load-demo")
    def load_demo() -> None:
        """Load the demo data set (idempotent)."""
        from sau.orgs.loader import DEMO_FILE, load_file

        counts = load_file(DEMO_FILE, now_utc())
        db.session.commit()
        click.echo("Démo : " + (", ".join(f"{k} +{v}" for k, v in sorted(counts.items())) or "déjà chargée"))


    register_notify_cli(app)  # `sau notify-dispatch`

    @app.cli.command("serve")
    @click.option("--host", default="127.0.0.1")
    @click.option("--port", default=5000, type=int)
    def serve(host: str, port: int) -> None:
        """Serve the app (embedded default), with the scheduler in the process when SCHEDULER_ENABLED."""
        from flask import current_app

        from sau.scheduler import build_scheduler

        real_app = current_app._get_current_object()  # type: ignore[attr-defined]
        if real_app.config["SCHEDULER_ENABLED"]:
            build_scheduler(real_app).start()
            click.echo("Planificateur démarré dans le processus web (balayage SLA).")
        # Flask's app.run() refuses to block inside a CLI command; serve with Werkzeug directly.
        from werkzeug.serving import run_simple

        click.echo(f"SAU sur http://{host}:{port}/")
        run_simple(host, port, real_app, threaded=True, use_reloader=False)

    @app.cli.command("scheduler")
    def scheduler() -> None:
        """Run the scheduler as its own process (production)."""
        from flask import current_app

        from sau.scheduler import build_scheduler

        click.echo("Planificateur SAU démarré.")
        build_scheduler(current_app._get_current_object(), blocking=True).start()  # type: ignore[attr-defined]

    @app.cli.command("sla-sweep")
    def sla_sweep() -> None:
        """Run one SLA sweep now."""
        from sau.tickets.sweeps import sweep

        result = sweep(now_utc())
        click.echo(f"Balayage SLA : {result.at_risk} à risque, {result.breached} dépassé(s)"
                   + (" (ignoré : un autre processus balaie)" if result.skipped else ""))

    @app.cli.command("sla-recompute")
    @click.option("--fix", is_flag=True, help="Correct the stored values that differ from the event log.")
    def sla_recompute(fix: bool) -> None:
        """Recompute every ticket's SLA from its event log and report stored values that differ."""
        from sau.tickets.sla import recompute_all

        count, mismatches = recompute_all(now_utc(), fix=fix)
        for m in mismatches[:200]:
            click.echo(f"{m.reference} {m.field}: enregistré {m.stored!r}, recalculé {m.computed!r}")
        click.echo(f"{count} ticket(s) recalculé(s), {len(mismatches)} écart(s)" + (" corrigé(s)" if fix else ""))
        if mismatches and not fix:
            raise SystemExit(1)

    @app.cli.command("opendata-refresh")
    def opendata_refresh() -> None:
        """Rebuild the open-data snapshot now (/donnees-ouvertes), whatever its age."""
        from flask import current_app

        from sau.reports.opendata import refresh, settings

        s = settings(current_app.config)
        counts = refresh(now_utc(), months=s.months, partial_weight=s.partial_weight)
        db.session.commit()
        click.echo("Données ouvertes régénérées : " + ", ".join(f"{k} {v} ligne(s)" for k, v in counts.items()))

    @app.cli.command("export-commune")
    @click.argument("code_insee")
    @click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
    def export_commune(code_insee: str, out: Path) -> None:
        """Export everything belonging to a commune as one ZIP (convention art. 12.3); logged."""
        from sau.privacy.commune_export import export_commune_cli

        click.echo(export_commune_cli(code_insee, out, now_utc()))


    @app.cli.command("retention-run")
    def retention_run() -> None:
        """Apply the personal-data retention rules now (inactive accounts, closed tickets, deleted-accounts list)."""
        from sau.privacy.retention import run_retention

        click.echo("Rétention : " + run_retention(now_utc()).summary())


def main() -> None:
    from sau import create_app

    cli = FlaskGroup(create_app=lambda: create_app())
    cli.main(prog_name="sau")
