"""Small helpers shared by the test-support modules."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when running under CI (env CI=true/1/yes)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> NoReturn:
    """A needed tool is missing: FAIL under CI (nothing may be silently skipped there), skip locally."""
    hint = " (install it with `bash scripts/ensure-system-deps.sh`)"
    if in_ci():
        pytest.fail(f"{reason}{hint} -- required when CI=true", pytrace=False)
    pytest.skip(f"{reason}{hint}")
