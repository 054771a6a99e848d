"""All-pairs reachability in the lab: every host pings every other host.

Each source host runs one shell loop inside its namespace (via `vtap lab exec`), all sources in
parallel, so 240 pings take about as long as 15.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

_LOOP = (
    'for ip in "$@"; do '
    'if ping -n -q -c {count} -W {wait} "$ip" >/dev/null 2>&1; '
    'then echo "ok $ip"; else echo "fail $ip"; fi; done'
)


@dataclass
class ReachReport:
    ok: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return len(self.ok) + len(self.failed)

    @property
    def loss_percent(self) -> float:
        return 100.0 * len(self.failed) / self.pairs if self.pairs else 0.0


def vtap_exec_prefix(host: str) -> list[str]:
    return [sys.executable, "-m", "vtap", "lab", "exec", host, "--"]


def ping_all(
    hosts: dict[str, str], *, count: int = 1, wait: int = 1, parallel: int = 16
) -> ReachReport:
    """Ping every ordered pair (name → IP); returns which pairs answered."""
    names_by_ip = {ip: name for name, ip in hosts.items()}

    def from_source(src: str) -> list[tuple[str, str, bool]]:
        targets = [ip for name, ip in hosts.items() if name != src]
        script = _LOOP.format(count=count, wait=wait)
        argv = [*vtap_exec_prefix(src), "sh", "-c", script, "ping-all", *targets]
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        results = []
        for line in out.splitlines():
            verdict, _, ip = line.partition(" ")
            if ip in names_by_ip:
                results.append((src, names_by_ip[ip], verdict == "ok"))
        seen = {dst for _, dst, _ in results}
        results += [(src, names_by_ip[ip], False) for ip in targets if names_by_ip[ip] not in seen]
        return results

    report = ReachReport()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for results in pool.map(from_source, sorted(hosts)):
            for src, dst, ok in results:
                (report.ok if ok else report.failed).append((src, dst))
    return report
