"""SLA policy: the Toodego annex § 6.1.a targets and per-service overrides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sla import DEFAULT_TARGETS, PRIORITIES, SlaPolicy

H = timedelta(hours=1)


def test_defaults_are_the_convention() -> None:
    policy = SlaPolicy()
    assert PRIORITIES == ("bloquant", "majeur", "mineur")
    assert dict(policy.targets) == {"bloquant": 8 * H, "majeur": 24 * H, "mineur": None}
    assert dict(DEFAULT_TARGETS) == dict(policy.targets)
    assert (policy.at_risk_ratio, policy.pause_while_waiting, policy.priority_change) == (0.75, False, "keep_start")


@pytest.mark.parametrize(
    ("priority", "target", "is_committed"),
    [("bloquant", 8 * H, True), ("majeur", 24 * H, True), ("mineur", None, False), (None, None, False)],
)
def test_target_for(priority: str | None, target: timedelta | None, is_committed: bool) -> None:
    assert SlaPolicy().target_for(priority) == target
    assert SlaPolicy().is_committed(priority) is is_committed


def test_with_overrides_merges_targets_and_keeps_the_rest() -> None:
    base = SlaPolicy(pause_while_waiting=True)
    service = base.with_overrides(targets={"majeur": 16 * H}, at_risk_ratio=0.5)
    assert dict(service.targets) == {"bloquant": 8 * H, "majeur": 16 * H, "mineur": None}
    assert (service.at_risk_ratio, service.pause_while_waiting, service.priority_change) == (0.5, True, "keep_start")
    assert base.targets["majeur"] == 24 * H
    assert base.with_overrides() == base


def test_policy_is_immutable_and_hashable() -> None:
    targets = {"bloquant": 4 * H}
    policy = SlaPolicy(targets=targets)
    targets["bloquant"] = 1 * H
    assert policy.targets["bloquant"] == 4 * H
    assert policy.targets["majeur"] is None  # missing priorities carry no commitment
    with pytest.raises(TypeError):
        policy.targets["bloquant"] = H  # type: ignore[index]
    assert hash(policy) == hash(SlaPolicy(targets={"bloquant": 4 * H}))
    assert len({SlaPolicy(), SlaPolicy(), SlaPolicy(priority_change="restart")}) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": {"urgent": H}}, "unknown priority"),
        ({"targets": {"bloquant": timedelta(0)}}, "must be positive"),
        ({"at_risk_ratio": 0}, "at_risk_ratio"),
        ({"at_risk_ratio": 1.5}, "at_risk_ratio"),
        ({"priority_change": "forget"}, "priority_change"),
    ],
)
def test_invalid_policies(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlaPolicy(**kwargs)


def test_unknown_priority_lookup() -> None:
    with pytest.raises(ValueError, match="unknown priority"):
        SlaPolicy().target_for("urgent")
