"""Performance check of the console at 1,000 policies and 5,000 flows (not a timed test).

    python -m tests.browser.perf_console [--policies N] [--flows N] [--out FILE.md]

Starts the console against a faked fabric (tests/browser/fakeconsole.py: counters of every flow
change every second, so every event carries all 5,000 flows), drives Debian's chromium and
records: time to the first complete render of each page, the cost of applying one live update
(parse + store + re-render of the visible rows), the longest main-thread task while updates
stream in, and the time for a scroll to the end of the flow table. Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from vtap import apiauth

WATCH = """
window.__longest = 0; window.__gaps = [];
new PerformanceObserver((list) => { for (const e of list.getEntries())
  window.__longest = Math.max(window.__longest, e.duration); }).observe({entryTypes: ["longtask"]});
let last = performance.now();
(function frame(now) {
  window.__gaps.push(now - last); last = now; requestAnimationFrame(frame);
})(last);
"""


def wait_server(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the fake console did not start")


def measure(url: str, policies: int, flows: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        start = time.perf_counter()
        page.goto(f"{url}/?token={apiauth.client_token()}#policies")
        page.wait_for_function(
            f"document.querySelector('#page-policies .count').textContent === "
            f"'{policies} of {policies}'",
            timeout=60_000,
        )
        out["policies: load to full table (ms)"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        page.click("[data-tab=flows]")
        page.wait_for_function(
            f"document.querySelector('#page-flows .count').textContent.endsWith('of {flows} flows')"
            f" && document.querySelectorAll('#flow-table .vt-row').length > 0",
            timeout=60_000,
        )
        out["flows: tab switch to full table (ms)"] = (time.perf_counter() - start) * 1000
        out["flows: DOM rows rendered (of all)"] = page.evaluate(
            "document.querySelectorAll('#flow-table .vt-row').length"
        )
        page.evaluate(WATCH)
        applies, renders = [], []
        for _ in range(10):
            time.sleep(1.0)
            perf = page.evaluate(
                "({a: vtap.store.perf.lastApplyMs, r: vtap.pages.flows.table.lastRenderMs})"
            )
            applies.append(perf["a"])
            renders.append(perf["r"])
        out["flows: apply one update, 5,000 rows changed (median ms)"] = statistics.median(applies)
        out["flows: apply one update (max ms)"] = max(applies)
        out["flows: render visible rows (median ms)"] = statistics.median(renders)
        gaps = page.evaluate("window.__gaps.slice(1)")
        out["flows: longest main-thread task over 10 s (ms)"] = page.evaluate("window.__longest")
        out["flows: longest frame gap over 10 s (ms)"] = max(gaps) if gaps else 0.0
        start = time.perf_counter()
        page.evaluate("document.querySelector('#flow-table .vt-body').scrollTop = 1e9")
        page.wait_for_function(
            f"document.querySelector('#flow-table .vt-row[data-index=\"{flows - 1}\"]') !== null",
            timeout=10_000,
        )
        out["flows: scroll to the last row (ms)"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        page.fill(".f-port", "443")
        page.wait_for_function(
            f"!document.querySelector('#page-flows .count').textContent.startsWith('{flows} of')",
            timeout=10_000,
        )
        out["flows: filter by port (ms)"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        page.click("[data-tab=policies]")
        page.fill("#page-policies .filter", "tap-09")
        page.wait_for_function(
            "document.querySelector('#page-policies .count').textContent.startsWith('100 of')",
            timeout=10_000,
        )
        out["policies: filter by name (ms)"] = (time.perf_counter() - start) * 1000
        out["JS heap used (MB)"] = page.evaluate("performance.memory.usedJSHeapSize") / 1e6
        browser.close()
    return out


def report(results: dict[str, float], policies: int, flows: int) -> str:
    lines = [
        "# Console performance",
        "",
        f"{policies:,} policies and {flows:,} flows (every flow's counters change every second,",
        "so each live update carries all of them), measured with "
        "`python -m tests.browser.perf_console`",
        "on the project machine (2 cores, Debian chromium headless, 1440×900).",
        "",
        "| measurement | value |",
        "|---|---:|",
    ]
    for name, value in results.items():
        lines.append(f"| {name} | {value:,.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--flows", type=int, default=5000)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--out", type=Path, default=Path("docs/ui-performance.md"))
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.browser.fakeconsole",
            "--port",
            str(args.port),
            "--policies",
            str(args.policies),
            "--flows",
            str(args.flows),
        ],
    )
    try:
        wait_server(url)
        results = measure(url, args.policies, args.flows)
    finally:
        server.terminate()
        server.wait(10)
    text = report(results, args.policies, args.flows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
