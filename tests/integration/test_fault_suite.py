"""The fault suite (`vtap bench faults`, small sizes) on a lab of its own: each fault injected
for real (SIGKILL of the controller mid-batch and mid-install, ovs-vswitchd stopped past the
request timeout, ovs-vswitchd killed and restarted under traffic, a full flow table, a link
flapping every 200 ms), each judged by the switches' tables and packets captured at the hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vtap.bench import faultcli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("faults")
    results = faultcli.run(
        full=False, out=out, take_lock=False, command="vtap bench faults", say=print
    )
    results["out"] = out
    return results


def _fault(suite: dict[str, Any], name: str) -> dict[str, Any]:
    found = [f for f in suite["faults"] if f["fault"] == name]
    assert found, f"{name} was not run"
    return found[0]


@pytest.mark.parametrize(
    "name", ["controller_killed_mid_batch", "controller_killed_mid_bulk_install"]
)
def test_a_killed_controller_loses_no_answered_policy_and_leaves_no_ownerless_rule(
    suite: dict[str, Any], name: str
) -> None:
    f = _fault(suite, name)
    assert "error" not in f, f.get("error")
    assert f["acked_missing"] == 0 and f["acked_not_active_or_error"] == 0, f
    assert f["request_in_flight_created"] in (None, 0, f["requests_of"]), "half a request"
    assert f["ownerless_entries"] == 0, f["ownerless_sample"]
    assert not f["tap_entries_left_after_delete"]
    assert f["ok"]


def test_a_switch_that_answers_late_keeps_its_session_and_its_policy_goes_active(
    suite: dict[str, Any],
) -> None:
    f = _fault(suite, "barrier_timeout")
    assert "error" not in f, f.get("error")
    assert f["bundles_unanswered_in_time"] > 0, "the fault was not injected"
    assert f["sessions_lost"] == 0
    assert f["health_unanswered"] == 0, "the API stopped answering"
    assert f["stream"]["ok"], f["stream"]


def test_after_a_switch_crash_nothing_is_forwarded_without_its_copy(
    suite: dict[str, Any],
) -> None:
    f = _fault(suite, "switch_restart")
    assert "error" not in f, f.get("error")
    assert f["forwarded_after_restart"] > 0, "the stream never came back"
    assert f["forwarded_without_copy_after_restart"] == 0, f
    assert f["copied_twice_or_more"] == 0
    assert f["copies_resumed_after_s"] <= f["forwarding_resumed_after_s"], f


def test_a_full_table_errors_only_the_policies_that_did_not_fit_until_there_is_room(
    suite: dict[str, Any],
) -> None:
    f = _fault(suite, "table_full")
    assert "error" not in f, f.get("error")
    assert 0 < f["status_when_full"]["error"] <= 10, f["status_when_full"]
    assert f["others_active"]
    assert all(r.endswith("FLOW_MOD_FAILED/TABLE_FULL") for r in f["error_reasons"])
    after = f["status_after"]
    assert after["active"] == after["total"], after


def test_a_flapping_link_loses_no_switch_and_ends_with_the_tables_it_had(
    suite: dict[str, Any],
) -> None:
    f = _fault(suite, "link_flap")
    assert "error" not in f, f.get("error")
    assert f["state_changes"] >= 40
    assert f["switches_lost"] == 0 and f["health_unanswered"] == 0
    assert f["tables_as_before"]
    assert f["all_active_after"]
    assert f["stream"]["ok"], f["stream"]


def test_the_report_says_what_was_met(suite: dict[str, Any]) -> None:
    text = (Path(suite["out"]) / "headline.md").read_text()
    assert f"{len(suite['faults'])} faults injected, goal met for {len(suite['faults'])}" in text
