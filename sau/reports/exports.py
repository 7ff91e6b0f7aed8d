"""Serve any report table as CSV or XLSX, streaming its rows.

CSV follows French spreadsheet habits: semicolon separator, UTF-8 with a byte order mark (so Excel detects the
encoding), decimal comma. XLSX is written by XlsxWriter in constant-memory mode to a temporary file: numbers stay
numbers, the header row is bold and frozen, columns have widths, and the sheet carries the table's title.

    table_response("xlsx", "conformite-sla-2026-03", [("code_insee", "Code INSEE"), ...], rows, title="…")

`columns` lists (key, French header); the CSV header row uses the keys (stable, machine-friendly column names),
the XLSX header row the French headers. Rows are sequences in the column order; values may be str, int, float,
Decimal, Fraction, bool, date/datetime or None.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, jsonify, stream_with_context

PARIS = ZoneInfo("Europe/Paris")
FORMATS = ("csv", "xlsx")
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Column = tuple[str, str]


class ExportFormatError(ValueError):
    """An export format other than csv or xlsx was asked for."""


def _local(value: datetime) -> datetime:
    return value.astimezone(PARIS) if value.tzinfo else value


def csv_cell(value: Any) -> str:
    """French CSV text of one value: decimal comma, dates in Paris time, booleans as oui/non."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float | Decimal | Fraction):
        text = f"{float(value):.2f}" if isinstance(value, Fraction) else (
            f"{value:.2f}" if isinstance(value, float) else str(value))
        return text.replace(".", ",")
    if isinstance(value, datetime):
        return _local(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _csv_lines(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow([key for key, _ in columns])
    yield "\ufeff" + flush()
    batch = 0
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
        batch += 1
        if batch >= 500:
            batch = 0
            yield flush()
    yield flush()


def _xlsx_file(columns: Sequence[Column], rows: Iterable[Sequence[Any]], title: str) -> str:
    """Write the workbook to a temporary file (constant memory) and return its path."""
    import xlsxwriter  # imported lazily: only exports need it

    fd, path = tempfile.mkstemp(prefix="sau-export-", suffix=".xlsx")
    os.close(fd)
    try:
        workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "in_memory": False,
                                              "remove_timezone": True})
        sheet = workbook.add_worksheet(_sheet_name(title))
        title_fmt = workbook.add_format({"bold": True, "font_size": 13})
        header_fmt = workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True, "valign": "top"})
        date_fmt = workbook.add_format({"num_format": "dd/mm/yyyy hh:mm"})
        day_fmt = workbook.add_format({"num_format": "dd/mm/yyyy"})
        pct_fmt = workbook.add_format({"num_format": "0.00"})
        widths = [max(10, min(45, len(header) + 2)) for _, header in columns]
        # constant_memory writes row by row: widths must be set before the first row
        sample: list[Sequence[Any]] = []
        iterator = iter(rows)
        for row in iterator:
            sample.append(row)
            if len(sample) >= 200:
                break
        for row in sample:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], min(45, len(csv_cell(value)) + 2))
        for i, width in enumerate(widths):
            sheet.set_column(i, i, width)
        sheet.write_string(0, 0, title, title_fmt)
        for i, (_, header) in enumerate(columns):
            sheet.write_string(1, i, header, header_fmt)
        sheet.freeze_panes(2, 0)
        r = 2

        def write(row: Sequence[Any], r: int) -> None:
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet.write_string(r, c, "oui" if value else "non")
                elif isinstance(value, int):
                    sheet.write_number(r, c, value)
                elif isinstance(value, float | Decimal | Fraction):
                    sheet.write_number(r, c, round(float(value), 4), pct_fmt)
                elif isinstance(value, datetime):
                    sheet.write_datetime(r, c, _local(value).replace(tzinfo=None), date_fmt)
                elif isinstance(value, date):
                    sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), day_fmt)
                else:
                    sheet.write_string(r, c, str(value))

        for row in sample:
            write(row, r)
            r += 1
        for row in iterator:
            write(row, r)
            r += 1
        if r > 2:
            sheet.autofilter(1, 0, r - 1, len(columns) - 1)
        workbook.close()
    except BaseException:
        os.unlink(path)
        raise
    return path


def _sheet_name(title: str) -> str:
    cleaned = "".join(" " if ch in "[]:*?/\\" else ch for ch in title).strip()
    return (cleaned or "Rapport")[:31]


def _file_chunks(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(64 * 1024):
                yield chunk
    finally:
        os.unlink(path)


def format_error_response(fmt: str) -> Response:
    response = jsonify({"error": {"code": "format_inconnu",
                                  "message": f"Format d'export inconnu : « {fmt} ». Formats possibles : csv, xlsx.",
                                  "fields": {"format": "csv ou xlsx"}}})
    response.status_code = 404
    return response


def table_response(fmt: str, filename_stem: str, columns: Sequence[Column],
                   rows: Iterable[Sequence[Any]] | Callable[[], Iterable[Sequence[Any]]], *,
                   title: str | None = None) -> Response:
    """A download of the table in `fmt` ("csv" or "xlsx"); any other format: 404 with a French JSON error.

    `rows` may be a callable returning the rows, so that the query runs only once the format is known.
    """
    if fmt not in FORMATS:
        return format_error_response(fmt)
    data = rows() if callable(rows) else rows
    headers = {"Content-Disposition": f'attachment; filename="{filename_stem}.{fmt}"', "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}
    if fmt == "csv":
        return Response(stream_with_context(_csv_lines(columns, data)), mimetype="text/csv",
                        headers=headers, content_type="text/csv; charset=utf-8")
    path = _xlsx_file(columns, data, title or filename_stem)
    headers["Content-Length"] = str(os.path.getsize(path))
    return Response(_file_chunks(path), mimetype=XLSX_MIMETYPE, headers=headers, direct_passthrough=True)


def filter_error_response(errors: dict[str, str]) -> Response:
    """Bad report filters on an export: 422 with the French messages per parameter."""
    response = jsonify({"error": {"code": "filtres_invalides", "message": " ".join(errors.values()),
                                  "fields": errors}})
    response.status_code = 422
    return response
