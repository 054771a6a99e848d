"""The web console in a real browser against a real controller and lab.

Tests run in file order on one lab: a policy made through the form (active, counters rising),
the form's error path, "Tap this flow" on a running ping (copies captured at the monitor), the
topology view of that policy, and deleting it. Screenshots of each page go to docs/screenshots.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.browser.conftest import API, lab_background, lab_exec, shot
from tests.browser.test_console_fit import MEASURE
from tests.integration.labkit import wait_until
from vtap import apiauth

H1, H3, H5, H6, H7, H8 = (f"10.0.0.{i}" for i in (1, 3, 5, 6, 7, 8))
SLOW = 30_000  # ms: an install waits for switches to settle (tap_settle) after the lab came up


def policies() -> list[dict]:
    return apiauth.get(f"{API}/api/v1/policies", timeout=5).json()


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator("#policy-table .vt-row", has_text=name)


def fill(page: Page, **fields: str) -> None:
    for name, value in fields.items():
        page.fill(f"#pf-{name}", value)


def copied(page: Page, name: str) -> int:
    text = row(page, name).locator(".vt-td").nth(6).inner_text().split("\n")[0]
    return int(float(text.rstrip("k")) * (1000 if text.endswith("k") else 1))


def test_policy_created_through_the_form_becomes_active_and_counts_copies(page: Page) -> None:
    page.click("[data-new]")
    fill(page, name="web-h1-h8", src_ip=H1, dst_ip=H8, ip_proto="1", monitor_ip=H5)
    page.click("form.policy-form button[type=submit]")
    expect(page.locator("form.policy-form")).to_have_count(0, timeout=SLOW)
    expect(row(page, "web-h1-h8").locator(".pill")).to_have_text("active", timeout=SLOW)

    # Traffic for longer than any wait below (it is stopped at the end): a loaded machine
    # must not see the pings end before the counters were read.
    traffic = lab_background("h1", "ping", "-i", "0.2", "-c", "1500", H8)
    try:
        deadline = time.monotonic() + 60
        while copied(page, "web-h1-h8") == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        first = copied(page, "web-h1-h8")
        assert first > 0, "the copied counter did not move while matching traffic ran"
        # The table updates by itself (event stream), no reload.
        deadline = time.monotonic() + 60
        while copied(page, "web-h1-h8") <= first and time.monotonic() < deadline:
            time.sleep(0.5)
        assert copied(page, "web-h1-h8") > first
        # The trend column draws the copy rate of the last readings.
        spark = row(page, "web-h1-h8").locator("svg.spark polyline")
        expect(spark).to_have_count(1, timeout=30_000)
        points = (spark.get_attribute("points") or "").split()
        assert len(points) >= 2, points
        row(page, "web-h1-h8").click()
        expect(page.locator("#policy-detail .switch-rules").first).to_be_visible()
        shot(page, "policies")
    finally:
        traffic.kill()
        traffic.wait()


def test_malformed_mac_shows_the_api_message_at_the_field_and_creates_nothing(
    page: Page,
) -> None:
    before = len(policies())
    page.click("[data-new]")
    fill(page, name="bad-mac", src_mac="00:00:00:00:00:zz", monitor_ip=H5)
    page.click("form.policy-form button[type=submit]")
    error = page.locator('[data-error-for="src_mac"]')
    expect(error).to_have_text(re.compile("must be a MAC address"))
    expect(page.locator('.field[data-field="src_mac"]')).to_have_class(re.compile("invalid"))
    shot(page, "policy-form-error")
    assert len(policies()) == before
    page.keyboard.press("Escape")


def test_tap_this_flow_creates_a_policy_whose_copies_reach_the_monitor(page: Page) -> None:
    traffic = lab_background("h3", "ping", "-i", "0.2", "-c", "3000", H6)  # stopped at the end
    try:
        page.goto(f"{API}/#flows")
        page.fill(".f-host", "h3")
        # The echo requests' flow (h3 → h6), not the replies' (h6 → h3): pick it by its id.
        flow_id = ""

        def request_flow() -> bool:
            nonlocal flow_id
            flows = apiauth.get(f"{API}/api/v1/flows", params={"host": H3}, timeout=5).json()
            items = flows["flows"] if isinstance(flows, dict) else flows
            found = [f["id"] for f in items if f["src_ip"] == H3 and f["dst_ip"] == H6]
            flow_id = found[0] if found else ""
            return bool(found)

        wait_until(request_flow, timeout=60)
        flow = page.locator(f'#flow-table .vt-row[data-key="{flow_id}"]')
        expect(flow).to_be_visible(timeout=15_000)
        flow.click()
        expect(page.locator(".flow-detail svg.chart")).to_be_visible(timeout=10_000)
        time.sleep(4)  # a few points on the chart
        shot(page, "flows")
        page.click(".flow-detail [data-tap]")
        expect(page.locator("#pf-src_ip")).to_have_value(H3)
        expect(page.locator("#pf-dst_ip")).to_have_value(H6)
        expect(page.locator("#pf-ip_proto")).to_have_value("1")
        fill(page, monitor_ip=H7)
        shot(page, "tap-this-flow-form")
        page.click("form.policy-form button[type=submit]")
        expect(page.locator("form.policy-form")).to_have_count(0, timeout=SLOW)
        (tapped,) = [p for p in policies() if p["src_ip"] == H3 and p["monitor_ip"] == H7]
        page.goto(f"{API}/#policies")
        expect(row(page, tapped["name"]).locator(".pill")).to_have_text("active", timeout=SLOW)

        capture = lab_exec(
            "h7", "timeout", "10", "tcpdump", "-i", "h7-eth0", "-n", "-l", "icmp", timeout=60
        )
        lines = [ln for ln in capture.stdout.splitlines() if "ICMP" in ln]
        copies = [ln for ln in lines if f"{H3} > {H6}" in ln]
        assert len(copies) >= 5, capture.stdout + capture.stderr
        assert len(copies) == len(lines), "the monitor got something that is not a copy"
    finally:
        traffic.kill()
        traffic.wait()


def test_topology_highlights_the_tapped_flow_paths(page: Page) -> None:
    (tapped,) = [p for p in policies() if p["src_ip"] == H3 and p["monitor_ip"] == H7]
    traffic = lab_background("h3", "ping", "-i", "0.2", "-c", "1500", H6)  # stopped at the end
    try:
        page.goto(f"{API}/#topology")
        page.select_option(".policy-pick", str(tapped["id"]))
        expect(page.locator("svg.topo .ln.prod").first).to_be_visible(timeout=60_000)
        expect(page.locator("svg.topo .ln.copy").first).to_be_visible()
        expect(page.locator("svg.topo .host.monitor")).to_have_count(1)
        expect(page.locator(".topo-info")).to_contain_text("Copy path")
        shot(page, "topology")
        fitted = page.evaluate(MEASURE)  # at 1,400×900 every switch and host is in view
        assert fitted["nodes"] == 2 + 4 + 8 and fitted["clipped"] == 0, fitted
    finally:
        traffic.kill()
        traffic.wait()


def test_delete_asks_then_removes_the_policy(page: Page) -> None:
    (tapped,) = [p for p in policies() if p["src_ip"] == H3 and p["monitor_ip"] == H7]
    target = row(page, tapped["name"])
    expect(target).to_be_visible(timeout=10_000)
    target.locator("[data-action=delete]").click()
    expect(page.locator(".modal.confirm")).to_contain_text(tapped["name"])
    page.click(".modal.confirm [data-confirm]")
    expect(row(page, tapped["name"])).to_have_count(0, timeout=SLOW)
    gone = apiauth.get(f"{API}/api/v1/policies/{tapped['id']}", timeout=5)
    assert gone.status_code == 404
    assert all(p["id"] != tapped["id"] for p in policies())


def test_without_a_token_the_console_asks_for_one(browser) -> None:  # type: ignore[no-untyped-def]
    """Opened without the login link, the console asks; with the right token it goes live."""
    context = browser.new_context()
    page = context.new_page()
    asked: list[str] = []

    def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.accept(apiauth.client_token() or "")

    page.on("dialog", answer)
    page.goto(f"{API}/#policies")
    page.wait_for_selector("#conn.up", timeout=10_000)
    assert asked and "token" in asked[0]
    context.close()
