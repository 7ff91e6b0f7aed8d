"""French message templates: `templates/<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`, all extending
a common layout that carries the tracking link and the link to the notification preferences."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render_subject(kind: str, context: dict[str, Any]) -> str:
    """The one-line subject of a message of `kind`. Raises jinja2.TemplateNotFound for an unknown kind."""
    subject = _env.get_template(f"{kind}.subject.txt").render(**context)
    return " ".join(subject.split())


def render(kind: str, context: dict[str, Any]) -> Rendered:
    """Subject, plain text and HTML of a message of `kind` (e.g. "request_received") for `context`.

    Raises jinja2.TemplateNotFound for an unknown kind and jinja2.UndefinedError for a missing value.
    """
    return Rendered(
        subject=render_subject(kind, context),
        text=_env.get_template(f"{kind}.txt").render(**context),
        html=_env.get_template(f"{kind}.html").render(**context),
    )


def known_kinds() -> list[str]:
    return sorted(p.name.removesuffix(".subject.txt") for p in TEMPLATES_DIR.glob("*.subject.txt"))
