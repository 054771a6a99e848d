"""Browser tests: Debian's chromium (never a downloaded browser) against a real controller and
a small lab (2 spines, 4 leaves, h1..h8), held under the machine's lab lock."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.labkit import vtap, wait_until
from vtap import apiauth
from vtap.lab.topo import LeafSpinePlan

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PLAN = LeafSpinePlan(2, 4, 2)
API = "http://127.0.0.1:8080"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def lab_exec(host: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return vtap("lab", "exec", host, "--", *cmd, timeout=timeout)


def lab_background(host: str, *cmd: str) -> subprocess.Popen[str]:
    """A command in a lab host that runs while the test goes on (e.g. ping -i 0.2)."""
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "vtap", "lab", "exec", host, "--", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _fabric_ready() -> bool:
    try:
        topo = apiauth.get(f"{API}/api/v1/topology", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    connected = [s for s in topo["switches"] if s["connected"]]
    want_links = len(PLAN.spine_switches) * len(PLAN.leaf_switches)
    return len(connected) == len(PLAN.switches) and len(topo["links"]) == want_links


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, machine_lab_lock: None
) -> Iterator[LeafSpinePlan]:
    if os.geteuid() != 0:
        pytest.fail("browser tests drive the lab: they need root")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing (make test installs Debian's chromium)")
    state_dir = tmp_path_factory.mktemp("vtap-browser-state")
    names = {h.ip: h.name for h in PLAN.hosts}
    saved = {k: os.environ.get(k) for k in ("VTAP_STATE_DIR", "VTAP_HOST_NAMES")}
    os.environ["VTAP_STATE_DIR"] = str(state_dir)
    os.environ["VTAP_HOST_NAMES"] = json.dumps(names)
    try:
        up = vtap(
            "lab", "up", "--detach", "--spines", "2", "--leaves", "4", "--hosts-per-leaf", "2"
        )
        assert up.returncode == 0, up.stderr
        wait_until(_fabric_ready, timeout=40)
        # Let every host speak once, so that the controller knows them all.
        for host in PLAN.hosts:
            other = PLAN.hosts[0] if host is not PLAN.hosts[0] else PLAN.hosts[1]
            lab_exec(host.name, "ping", "-c1", "-W1", other.ip)
        yield PLAN
    finally:
        down = vtap("lab", "down")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="module")
def browser(lab: LeafSpinePlan) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{API}/?token={apiauth.client_token()}#policies")  # the login link lab up prints
    page.wait_for_selector("#conn.up", timeout=10_000)
    yield page
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    time.sleep(0.3)  # let the last frame settle
    page.screenshot(path=str(path))
    return path
