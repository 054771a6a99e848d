"""`vtap trace --verify`: replay what the model says enters each switch through the switch
itself (`ovs-appctl ofproto/trace`) and compare the ports it leaves by. Runs where the switches
are (the lab's Open vSwitch, or the system's), by bridge name = switch name."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vtap.errors import VtapError

Run = Callable[[Sequence[str]], str]
_PORT = re.compile(r"^\s+(\S+) (\d+)/(\d+):", re.MULTILINE)


@dataclass(frozen=True)
class Verdict:
    switch: str
    in_port: int
    model: list[int]  # OpenFlow ports the model sends it out of
    switch_says: list[int] | None  # what the switch does (None: it sends it to the controller)
    agree: bool
    detail: str


def run_appctl(env: dict[str, str]) -> Run:
    def run(argv: Sequence[str]) -> str:
        try:
            proc = subprocess.run(
                ["ovs-appctl", *argv],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
                check=False,
            )
        except FileNotFoundError:
            raise VtapError(
                "--verify needs ovs-appctl (Debian package openvswitch-switch)"
            ) from None
        if proc.returncode != 0:
            line = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[:1]
            raise VtapError(f"ovs-appctl {' '.join(argv[:2])}: {line[0] if line else 'failed'}")
        return proc.stdout

    return run


def datapath_ports(dpif_show: str, bridge: str) -> dict[int, int]:
    """Datapath port → OpenFlow port of one bridge, from `ovs-appctl dpif/show`."""
    out: dict[int, int] = {}
    section = None
    for line in dpif_show.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.strip().endswith(":"):
            section = line.strip()[:-1]
            continue
        found = _PORT.match(line)
        if found and section == bridge and line.startswith("    "):
            out[int(found.group(3))] = int(found.group(2))
    return out


def datapath_outputs(trace_text: str) -> list[int] | None:
    """The datapath ports in the `Datapath actions:` line; None if the packet goes to the
    controller (a userspace action), [] if it is dropped."""
    line = next((ln for ln in trace_text.splitlines() if ln.startswith("Datapath actions:")), None)
    if line is None:
        raise VtapError("ofproto/trace printed no datapath actions")
    actions = line.split(":", 1)[1].strip()
    if "userspace(" in actions and "controller" in actions:
        return None
    ports, depth, token = [], 0, ""
    for char in actions + ",":
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            if token.strip().isdigit():
                ports.append(int(token.strip()))
            token = ""
        else:
            token += char
    return ports


def verify(entries: Sequence[dict], run: Run) -> list[Verdict]:
    """Each entry of a trace (`switch`, `in_port`, `flow`, `out_ports`) replayed on its switch."""
    shown = run(["dpif/show"])
    verdicts = []
    for entry in entries:
        bridge = entry["switch"]
        to_openflow = datapath_ports(shown, bridge)
        if not to_openflow:
            raise VtapError(f"no bridge named {bridge} on this machine's Open vSwitch")
        text = run(["ofproto/trace", bridge, f"in_port={entry['in_port']},{entry['flow']}"])
        outputs = datapath_outputs(text)
        model = sorted(entry["out_ports"])
        if outputs is None:
            says = None
            agree = False
            detail = "the switch sends it to the controller (no path installed yet?)"
        else:
            says = sorted({to_openflow.get(p, -p) for p in outputs})
            agree = says == model
            detail = "agree" if agree else f"model {model}, switch {says}"
        verdicts.append(Verdict(bridge, entry["in_port"], model, says, agree, detail))
    return verdicts
