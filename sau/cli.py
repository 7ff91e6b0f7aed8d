"""Command line: `sau` is the Flask CLI of the app (`sau run`, `sau db upgrade`, and the commands below)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup

from sau.clock import now_utc
from sau.errors import ValidationFailed
from sau.extensions import db


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


def main() -> None:
    from sau import create_app

    cli = FlaskGroup(create_app=lambda: create_app())
    cli.main(prog_name="sau")
