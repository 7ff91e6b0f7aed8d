"""Attachments: size and type limited, content stored on disk outside the database."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import current_app
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from sau.errors import ValidationFailed
from sau.tickets.models import Attachment, Ticket

# Allowed types, checked on the file's first bytes rather than trusting the browser's Content-Type.
ALLOWED = {
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".gif": ("image/gif", (b"GIF87a", b"GIF89a")),
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".txt": ("text/plain", ()),
}
ALLOWED_LABEL = "PNG, JPEG, GIF, PDF ou texte"


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def size_label(size: int) -> str:
    """A size in French units for messages: "5 Mo", "1,5 Mo", "500 Ko", "800 octets"."""
    if size >= 1024 * 1024:
        value, unit = size / (1024 * 1024), "Mo"
    elif size >= 1024:
        value, unit = size / 1024, "Ko"
    else:
        return f"{size} octets"
    return f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",") + f" {unit}"


def read_uploads(files: list[FileStorage]) -> list[Upload]:
    """Validate uploaded files. Raises ValidationFailed naming the `attachments` field."""
    files = [f for f in files if f and f.filename]
    limit = current_app.config["MAX_ATTACHMENTS"]
    max_bytes = current_app.config["MAX_ATTACHMENT_BYTES"]
    if len(files) > limit:
        raise ValidationFailed(f"{limit} pièces jointes au plus.", {"attachments": f"{limit} fichiers au plus."})
    uploads = []
    for f in files:
        name = secure_filename(f.filename or "") or "fichier"
        ext = Path(name).suffix.lower()
        if ext not in ALLOWED:
            raise ValidationFailed(
                f"Le fichier « {f.filename} » n'est pas d'un type accepté ({ALLOWED_LABEL}).",
                {"attachments": f"Types acceptés : {ALLOWED_LABEL}."},
            )
        data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValidationFailed(
                f"Le fichier « {f.filename} » dépasse {size_label(max_bytes)}.",
                {"attachments": f"{size_label(max_bytes)} au plus par fichier."},
            )
        if not data:
            raise ValidationFailed(f"Le fichier « {f.filename} » est vide.", {"attachments": "Fichier vide."})
        content_type, magics = ALLOWED[ext]
        if magics and not any(data.startswith(m) for m in magics):
            raise ValidationFailed(
                f"Le contenu du fichier « {f.filename} » ne correspond pas à son extension.",
                {"attachments": "Contenu du fichier non reconnu."},
            )
        if content_type == "text/plain":
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValidationFailed(
                    f"Le fichier texte « {f.filename} » n'est pas en UTF-8.", {"attachments": "Texte non UTF-8."}
                ) from None
        uploads.append(Upload(name, content_type, data))
    return uploads


def store(ticket: Ticket, uploads: list[Upload], now: datetime, *, internal: bool = False) -> list[Attachment]:
    """Write the files to disk and attach them to the ticket (the DB row holds only metadata)."""
    directory = Path(current_app.config["ATTACHMENTS_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    attachments = []
    for up in uploads:
        key = secrets.token_hex(16)
        (directory / key).write_bytes(up.data)
        att = Attachment(
            filename=up.filename, content_type=up.content_type, size=len(up.data),
            sha256=hashlib.sha256(up.data).hexdigest(), storage_key=key, is_internal=internal, created_at=now,
        )
        ticket.attachments.append(att)
        attachments.append(att)
    return attachments


def path_of(attachment: Attachment) -> Path:
    return Path(current_app.config["ATTACHMENTS_DIR"]) / attachment.storage_key
