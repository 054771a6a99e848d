"""The topology page fits any window: at 1,400×900 every switch and host of the 4×8 fabric is
inside the canvas, nothing clipped; a 16×64 fabric fits too, and its labels become readable
by zooming in (wheel), after which dragging pans and Fit shows everything again. The console
runs against a controller that knows the fabric (no lab: its size is the point here)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn

from tests.api.conftest import observe_fabric
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.unit.leafspine import Fabric
from vtap.api.app import create_app
from vtap.controller.core import Controller
from vtap.domain.tokens import Role
from vtap.settings import Settings
from vtap.store import MemoryPolicyRepository

VIEWPORT = {"width": 1400, "height": 900}

# Every node's box against the canvas's: how many stick out, and the smallest label height.
MEASURE = """() => {
  const canvas = document.querySelector('.topo-canvas').getBoundingClientRect();
  const nodes = [...document.querySelectorAll('svg.topo g.sw, svg.topo g.host')];
  const out = nodes.filter((n) => {
    const r = n.getBoundingClientRect();
    return r.left < canvas.left - 1 || r.right > canvas.right + 1
        || r.top < canvas.top - 1 || r.bottom > canvas.bottom + 1;
  });
  const labels = [...document.querySelectorAll('svg.topo g.sw text')]
    .map((t) => t.getBoundingClientRect().height);
  return {nodes: nodes.length, clipped: out.length, label: Math.min(...labels)};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(fabric: Fabric, tmp: Path) -> tuple[str, str, uvicorn.Server]:
    names = {f"10.0.0.{i}": f"h{i}" for i in range(1, fabric.leaves * fabric.hosts_per_leaf + 1)}
    controller = Controller(Settings(state_dir=tmp, host_names=names), MemoryPolicyRepository())
    observe_fabric(controller, fabric)
    _, token = controller.tokens.create("console", Role.VIEWER, datetime.now(UTC))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(controller), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True).start()
    return f"http://127.0.0.1:{port}", token, server


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize(("spines", "leaves"), [(4, 8), (16, 64)])
def test_the_whole_fabric_fits_the_window(
    chromium, tmp_path: Path, spines: int, leaves: int
) -> None:  # type: ignore[no-untyped-def]
    fabric = Fabric(spines=spines, leaves=leaves, hosts_per_leaf=2)
    url, token, server = _serve(fabric, tmp_path)
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{url}/?token={token}#topology")
        want = spines + leaves + leaves * 2
        page.wait_for_function(
            f"document.querySelectorAll('svg.topo g.sw, svg.topo g.host').length === {want}",
            timeout=30_000,
        )
        fitted = page.evaluate(MEASURE)
        assert fitted["nodes"] == want and fitted["clipped"] == 0, fitted
        assert page.locator("svg.topo g.host text", has_text="h16").count() >= 1  # names
        if (spines, leaves) == (4, 8):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "topology-4x8.png"))
            assert fitted["label"] >= 9, "4×8 must be readable without zooming"
        else:
            box = page.locator("svg.topo").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            for _ in range(12):
                page.mouse.wheel(0, -200)
            zoomed = page.evaluate(MEASURE)
            assert zoomed["label"] > fitted["label"] * 4 and zoomed["label"] >= 9, (fitted, zoomed)
            before = page.locator("svg.topo").get_attribute("viewBox")
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 - 200, box["y"] + box["height"] / 2)
            page.mouse.up()
            assert page.locator("svg.topo").get_attribute("viewBox") != before, "no pan"
            page.click("button.fit")
            assert page.evaluate(MEASURE)["clipped"] == 0
    finally:
        context.close()
        server.should_exit = True
    assert errors == [], errors
