"""Neutral rules in `ovs-ofctl` syntax: what an operator compares with `ovs-ofctl dump-flows`.

Display only (the API's per-policy rules view); the controller never parses it back. Where
ovs-ofctl offers a shorthand (`tcp`, `udp`, `ip`, `arp`) it is used, as dump-flows does.
"""

from __future__ import annotations

from collections.abc import Mapping

from vtap.domain.network import dpid_str
from vtap.domain.policy import Policy
from vtap.domain.reports import PolicyRules, RuleOut, SwitchRules
from vtap.openflow.rules import (
    METADATA_FULL,
    OFPVID_PRESENT,
    REG_FULL,
    Action,
    FlowRule,
    GroupRule,
    LoadReg,
    Match,
    MoveBits,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    ReservedPort,
    Resubmit,
    SetField,
    ToGroup,
)

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
_FIELD_NAMES = {
    "eth_src": "eth_src",
    "eth_dst": "eth_dst",
    "ipv4_src": "ip_src",
    "ipv4_dst": "ip_dst",
    "vlan_vid": "vlan_vid",
}
_PORT_NAMES = {
    ReservedPort.IN_PORT: "IN_PORT",
    ReservedPort.NORMAL: "NORMAL",
    ReservedPort.FLOOD: "FLOOD",
    ReservedPort.ALL: "ALL",
    ReservedPort.LOCAL: "LOCAL",
    ReservedPort.TABLE: "TABLE",
}


def _masked(value: int, mask: int, full: int) -> str:
    return f"0x{value:x}" if mask == full else f"0x{value:x}/0x{mask:x}"


def _match(m: Match) -> list[str]:
    out: list[str] = []
    if m.in_port is not None:
        out.append(f"in_port={_PORT_NAMES.get(m.in_port, m.in_port)}")  # type: ignore[call-overload]
    if m.metadata is not None:
        out.append(f"metadata={_masked(*m.metadata, METADATA_FULL)}")
    out += [f"reg{n}={_masked(value, mask, REG_FULL)}" for n, value, mask in m.regs]
    if m.eth_type == 0x8847:
        out.append("mpls")
        if m.mpls_label is not None:
            out.append(f"mpls_label={m.mpls_label}")
        if m.mpls_tc is not None:
            out.append(f"mpls_tc={m.mpls_tc}")
    elif m.eth_type == 0x0800:
        out.append(_PROTO_NAMES.get(m.ip_proto, "ip") if m.ip_proto is not None else "ip")
        if m.ip_proto is not None and m.ip_proto not in _PROTO_NAMES:
            out.append(f"nw_proto={m.ip_proto}")
    elif m.eth_type == 0x0806:
        out.append("arp")
    elif m.eth_type is not None:
        out.append(f"dl_type=0x{m.eth_type:04x}")
    if m.vlan_vid is not None:
        if m.vlan_vid & OFPVID_PRESENT:
            out.append(f"dl_vlan={m.vlan_vid & 0x0FFF}")
        else:
            out.append("vlan_tci=0x0000/0x1fff")
    if m.eth_src is not None:
        out.append(f"dl_src={m.eth_src}")
    if m.eth_dst is not None:
        out.append(f"dl_dst={m.eth_dst}")
    if m.ipv4_src is not None:
        out.append(f"nw_src={m.ipv4_src}")
    if m.ipv4_dst is not None:
        out.append(f"nw_dst={m.ipv4_dst}")
    for name in ("tcp_src", "udp_src"):
        if getattr(m, name) is not None:
            out.append(f"tp_src={getattr(m, name)}")
    for name in ("tcp_dst", "udp_dst"):
        if getattr(m, name) is not None:
            out.append(f"tp_dst={getattr(m, name)}")
    return out


def _action(a: Action) -> str:
    match a:
        case Output(port=port, max_len=max_len):
            if port == ReservedPort.CONTROLLER:
                return f"CONTROLLER:{max_len}"
            name = _PORT_NAMES.get(port)  # type: ignore[call-overload]
            return name if name is not None else f"output:{port}"
        case SetField(field=name, value=value):
            return f"set_field:{value}->{_FIELD_NAMES.get(name, name)}"
        case PushVlan(ethertype=tpid):
            return f"push_vlan:0x{tpid:04x}"
        case PopVlan():
            return "pop_vlan"
        case ToGroup(group_id=gid):
            return f"group:0x{gid:08x}"
        case Resubmit(table_id=table):
            return f"resubmit(,{table})"
        case LoadReg(reg=reg, value=value, mask=mask):
            return f"set_field:{_masked(value, mask, REG_FULL)}->reg{reg}"
        case MoveBits(src=src, dst=dst, n_bits=n, src_ofs=so, dst_ofs=do):
            return f"move:{_field(src)}[{so}..{so + n - 1}]->{_field(dst)}[{do}..{do + n - 1}]"
        case PushMpls(ethertype=ethertype):
            return f"push_mpls:0x{ethertype:04x}"
        case PopMpls(ethertype=ethertype):
            return f"pop_mpls:0x{ethertype:04x}"
    raise ValueError(f"no ovs-ofctl form for {a!r}")


def _field(name: str) -> str:
    if name.startswith("reg"):
        return f"NXM_NX_REG{name[3:]}"
    return {"mpls_tc": "OXM_OF_MPLS_TC", "mpls_label": "OXM_OF_MPLS_LABEL"}.get(name, name)


def _actions(
    actions: tuple[Action, ...],
    goto_table: int | None = None,
    write_metadata: tuple[int, int] | None = None,
) -> str:
    parts = [_action(a) for a in actions]
    if write_metadata is not None:
        parts.append(f"write_metadata:{_masked(*write_metadata, METADATA_FULL)}")
    if goto_table is not None:
        parts.append(f"goto_table:{goto_table}")
    return ",".join(parts) or "drop"


def to_ofctl(item: FlowRule | GroupRule) -> str:
    """One flow (`ovs-ofctl add-flow` syntax) or group (`add-group` syntax) as text."""
    if isinstance(item, GroupRule):
        kind = item.group_type.name.lower()
        buckets = ",".join(f"bucket={_actions(b.actions)}" for b in item.buckets)
        return f"group_id=0x{item.group_id:08x},type={kind}" + (f",{buckets}" if buckets else "")
    head = [f"table={item.table_id}", f"priority={item.priority}"]
    if item.cookie:
        head.append(f"cookie=0x{item.cookie:016x}")
    if item.idle_timeout:
        head.append(f"idle_timeout={item.idle_timeout}")
    if item.hard_timeout:
        head.append(f"hard_timeout={item.hard_timeout}")
    return (
        ",".join(head + _match(item.match))
        + " actions="
        + _actions(item.actions, item.goto_table, item.write_metadata)
    )


def rules_report(
    policy: Policy, by_switch: Mapping[int, tuple[str, list[FlowRule], list[GroupRule]]]
) -> PolicyRules:
    """A policy's compiled rules per switch, as the API shows them."""
    switches = []
    for dpid, (name, flows, groups) in by_switch.items():
        rules = [RuleOut(kind="group", group_id=g.group_id, ofctl=to_ofctl(g)) for g in groups] + [
            RuleOut(
                kind="flow",
                table_id=r.table_id,
                priority=r.priority,
                cookie=f"0x{r.cookie:016x}",
                ofctl=to_ofctl(r),
            )
            for r in sorted(flows, key=lambda r: (r.table_id, -r.priority))
        ]
        switches.append(SwitchRules(dpid=dpid_str(dpid), switch=name, rules=rules))
    return PolicyRules(
        policy_id=policy.id,
        status=policy.status.value,
        status_reason=policy.status_reason,
        switches=switches,
    )
