"""Fault tests (issue 9, point 5): real processes, real failures. They take minutes and start their own PostgreSQL,
gunicorn and scheduler processes, so they run on demand only: `make faults`, `SAU_FAULTS=1 pytest tests/faults` or
`pytest -m faults tests/faults`. Otherwise (e.g. `make test`) they are collected and skipped."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Stack
from tests.support.pgcluster import find_pg_bindir

ON_DEMAND = "fault tests run on demand: `make faults` (or SAU_FAULTS=1, or -m faults)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("SAU_FAULTS") == "1" or "faults" in (config.getoption("markexpr") or "")
    for item in items:
        if "faults" in item.keywords:
            if not wanted:
                item.add_marker(pytest.mark.skip(reason=ON_DEMAND))
            elif find_pg_bindir() is None:
                item.add_marker(pytest.mark.skip(reason="PostgreSQL server binaries not installed"))


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    try:
        yield s
    finally:
        s.close()
