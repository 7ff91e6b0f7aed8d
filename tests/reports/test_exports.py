"""Report exports: the XLSX workbook holds the same table as the CSV (numbers as numbers), bad filters and
unknown formats are answered in French, downloads are never cached."""
from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from sau.reports.exports import csv_cell, table_response
from tests.reports.test_dashboard import _history


def read_csv(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def read_xlsx(response) -> tuple[str, list[str], list[list[object]]]:
    """(title, French headers, data rows) of the first sheet."""
    sheet = load_workbook(io.BytesIO(response.get_data()), read_only=True).worksheets[0]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    return values[0][0], values[1], values[2:]


def same_table(csv_rows: list[list[str]], xlsx_rows: list[list[object]]) -> None:
    """Same rows; numbers are numbers in the workbook and equal the CSV's (decimal comma, 2 decimals)."""
    assert len(csv_rows) == len(xlsx_rows)
    for c_row, x_row in zip(csv_rows, xlsx_rows, strict=True):
        assert len(c_row) == len(x_row)
        for c, x in zip(c_row, x_row, strict=True):
            if isinstance(x, int | float) and not isinstance(x, bool):
                assert abs(float(c.replace(",", ".")) - x) < 0.006, (c, x)
            elif hasattr(x, "strftime"):
                assert x.strftime("%Y-%m-%d %H:%M") == c
            else:
                assert ("" if x is None else x) == c


def test_dashboard_xlsx_equals_csv(app, clock, make_request, login_as):
    _history(app, clock, make_request)
    client = login_as("manager_metropole")
    as_csv = client.get("/rapports/sla.csv?period=2026-03")
    as_xlsx = client.get("/rapports/sla.xlsx?period=2026-03")
    assert as_xlsx.status_code == 200
    assert as_xlsx.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert as_xlsx.headers["Cache-Control"] == "no-store"
    assert 'attachment; filename="conformite-sla-2026-03-01.xlsx"' == as_xlsx.headers["Content-Disposition"]
    rows = read_csv(as_csv)
    title, headers, data = read_xlsx(as_xlsx)
    assert "Conformité SLA par commune du 01/03/2026 au 31/03/2026" == title
    assert headers[0] == "Code INSEE" and len(headers) == len(rows[0])
    same_table(rows[1:], data)
    ecully = next(r for r in data if r[0] == "69081")
    assert isinstance(ecully[2], int | float) and ecully[2] == 3 and abs(ecully[6] - 66.6667) < 0.001


def test_bad_filters_on_exports_are_422_in_french(app, login_as):
    client = login_as("manager_metropole")
    for path in ("/rapports/sla.csv", "/rapports/sla.xlsx"):
        response = client.get(f"{path}?period=2026-13&priority=mineur")
        assert response.status_code == 422
        fields = response.get_json()["error"]["fields"]
        assert fields["period"] == "Mois invalide." and "mineur" in fields["priority"]
    assert client.get("/rapports/sla.pdf").status_code == 404


def test_unknown_format_is_refused_in_french(app):
    with app.test_request_context():
        response = table_response("ods", "x", [("a", "A")], [(1,)])
    assert response.status_code == 404
    assert "Format d'export inconnu" in response.get_json()["error"]["message"]


def test_csv_cells_are_french():
    assert csv_cell(66.666) == "66,67" and csv_cell(None) == "" and csv_cell(True) == "oui" and csv_cell(3) == "3"
