"""For every accepted policy, a restart followed by reconcile sends zero changes.

Reconcile compares what the switches report (decoded from their table dumps) with what the
compiler wants from the stored policies. So the property holds when (1) every accepted spelling
is stored in one canonical form that reads back equal, (2) compiling the read-back policies
wants exactly the same rules, and (3) every wanted rule survives the wire: encoded as vtap
sends it, reported back as a switch dumps it, decoded equal. Random specs in many spellings
(upper-case MACs, every optional field, both deliveries) are pushed through all three.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from tests.sim.lab import Lab, ip, mac
from tests.unit.test_codec_hostile import flow_entry, group_entry, multipart
from vtap.domain.policy import PolicySpec
from vtap.ofchannel import codec
from vtap.openflow.rules import FlowRule, GroupRule
from vtap.store.sqlite import SqlitePolicyRepository

T0 = datetime(2026, 11, 29, tzinfo=UTC)


def _spelling(rng: random.Random, host: int) -> dict[str, str]:
    text = mac(host)
    return {"mac": text.upper() if rng.random() < 0.5 else text, "ip": ip(host)}


def random_spec(rng: random.Random, index: int) -> dict[str, object]:
    hosts = rng.sample(range(1, 17), 3)
    src, dst, monitor = (_spelling(rng, h) for h in hosts)
    body: dict[str, object] = {"name": f"p{index}.{rng.choice(['a', 'B', '_', '-'])}"}
    for role, who in (("src", src), ("dst", dst)):
        for kind in ("mac", "ip"):
            if rng.random() < 0.5:
                body[f"{role}_{kind}"] = who[kind]
    body[rng.choice(["monitor_mac", "monitor_ip"])] = monitor[rng.choice(["mac", "ip"])]
    if "monitor_mac" in body:
        body["monitor_mac"] = monitor["mac"]
    else:
        body["monitor_ip"] = monitor["ip"]
    if rng.random() < 0.3:
        body["vlan_id"] = rng.randint(1, 4094)
    if rng.random() < 0.7:
        body["ip_proto"] = rng.choice([6, 17, 1])
        if body["ip_proto"] in (6, 17):
            body[rng.choice(["src_port", "dst_port"])] = rng.randint(1, 65535)
    if rng.random() < 0.2:
        body.update(dst_mac=dst["mac"], dst_ip=dst["ip"], delivery="rewrite")
    if rng.random() < 0.1:
        body["enabled"] = False
    return body


def accepted(n: int, seed: int) -> list[PolicySpec]:
    rng = random.Random(seed)
    specs: dict[object, PolicySpec] = {}
    i = 0
    while len(specs) < n:
        i += 1
        try:
            spec = PolicySpec.model_validate(random_spec(rng, i))
        except ValidationError:
            continue  # e.g. no endpoint left: refused, so not part of the property
        specs.setdefault(spec.identity(), spec)
    return list(specs.values())


def _reported_flow(rule: FlowRule) -> FlowRule:
    """The rule as a switch's flow-stats dump reports it, decoded."""
    _, reply = codec.decode(multipart(1, flow_entry(rule)))
    (stat,) = reply.body  # type: ignore[attr-defined]
    return stat.rule


def _reported_group(group: GroupRule) -> GroupRule:
    _, reply = codec.decode(
        multipart(7, group_entry(group.group_id, group.group_type, group.buckets))
    )
    (decoded,) = reply.body  # type: ignore[attr-defined]
    return decoded


def test_accepted_policies_restart_to_zero_changes(tmp_path: Path) -> None:
    specs = accepted(300, seed=29)
    db = tmp_path / "policies.db"
    store = SqlitePolicyRepository(db)
    stored = store.add_many(specs, T0)
    lab = Lab()
    before = lab.compile(*stored)
    store.set_tags(lab.tags)
    store.close()

    reopened = SqlitePolicyRepository(db)  # the restart: a new process, state from the file
    again = reopened.list()
    assert again == stored
    restarted = Lab()
    restarted.tags = reopened.get_tags()
    reopened.close()
    after = restarted.compile(*again)
    assert after.flows.keys() == before.flows.keys()
    for dpid, flows in before.flows.items():
        assert sorted(map(repr, after.flows[dpid])) == sorted(map(repr, flows))
        assert sorted(map(repr, after.groups.get(dpid, []))) == sorted(
            map(repr, before.groups.get(dpid, []))
        )

    wanted_flows = [f for flows in after.flows.values() for f in flows]
    assert len(wanted_flows) > 1000  # the property was exercised on real rule sets
    assert [f for f in wanted_flows if _reported_flow(f) != f] == []
    groups = [g for gs in after.groups.values() for g in gs]
    assert groups and [g for g in groups if _reported_group(g) != g] == []


def test_spellings_of_one_policy_are_one_policy() -> None:
    a = PolicySpec(name="x", src_mac="00:00:00:00:00:0A", monitor_ip="10.0.0.3")
    b = PolicySpec(name="x", src_mac="00:00:00:00:00:0a", monitor_ip="10.0.0.3")
    assert a == b and a.identity() == b.identity()
