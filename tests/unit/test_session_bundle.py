"""apply_bundle against a scripted switch that handles ONF bundles as Open vSwitch 3.1 does.

What the fake reproduces (verified on OVS 3.1): an add that fails validation gets its error at
once and is left out of the bundle (a later commit would succeed without it); an add that fails
only when applied fails the commit: the switch sends that message's error under its add's xid,
then ONFBFC_MSG_FAILED under the commit's xid, and applies nothing.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.unit.test_session import _connect
from vtap.ofchannel import codec
from vtap.ofchannel import messages as m
from vtap.ofchannel.session import ENCODE_CHUNK, BatchError, SessionClosed
from vtap.openflow.diff import ChangeSet
from vtap.openflow.rules import (
    Bucket,
    FlowRule,
    GroupRule,
    GroupType,
    LoadReg,
    Match,
    Output,
    Resubmit,
    ToGroup,
    with_regs,
)

P = codec.codec_parser()
ONF = 0x4F4E4600
FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED


class BundleSwitch:
    """Handshake, barrier, echo and ONF bundles; flow-mods on table 7 fail validation, a
    group add for an existing group (and, with `check_groups`, a flow using a missing group)
    fails at commit. `log` records what arrived: ("open", id), ("add", id), ("barrier",),
    ("commit", id), ("discard", id)."""

    def __init__(
        self,
        *,
        groups: Sequence[int] = (),
        check_groups: bool = False,
        bundles: bool = True,
        commit_error_only: bool = False,
        on_commit: str = "answer",  # or "hang up" / "ignore"
    ) -> None:
        self.groups = set(groups)
        self.check_groups = check_groups
        self.bundles = bundles
        self.commit_error_only = commit_error_only
        self.on_commit = on_commit
        self.open: dict[int, list[tuple[int, bytes]]] = {}
        self.applied: list[bytes] = []  # inner messages of committed bundles, in order
        self.log: list[tuple[object, ...]] = []
        self.bad_adds: list[str] = []  # adds whose flags or inner xid were wrong
        self._writer: asyncio.StreamWriter | None = None

    def _send(self, msg: object, xid: int) -> None:
        assert self._writer is not None
        self._writer.write(codec.encode(msg, xid))

    def _error(self, xid: int, type_: int, code: int, data: bytes = b"") -> None:
        self._send(P.OFPErrorMsg(codec._DP, type_=type_, code=code, data=data[:64]), xid)

    def _onf_error(self, xid: int, exp_type: int) -> None:
        err = P.OFPErrorMsg(codec._DP, type_=0xFFFF, exp_type=exp_type, experimenter=ONF, data=b"")
        self._send(err, xid)

    def _reply(self, bundle_id: int, type_: int, xid: int) -> None:
        self._send(P.ONFBundleCtrlMsg(codec._DP, bundle_id, type_, FLAGS, []), xid)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._send(P.OFPHello(codec._DP), 1)
        try:
            while True:
                head = await reader.readexactly(8)
                _, mtype, length, xid = struct.unpack("!BBHI", head)
                body = await reader.readexactly(length - 8)
                if mtype == ofp.OFPT_FEATURES_REQUEST:
                    body = struct.pack("!QIBB2xII", 0x101, 0, 254, 0, 0, 0)
                    writer.write(struct.pack("!BBHI", 4, ofp.OFPT_FEATURES_REPLY, 32, xid) + body)
                elif mtype == ofp.OFPT_BARRIER_REQUEST:
                    self.log.append(("barrier",))
                    self._send(P.OFPBarrierReply(codec._DP), xid)
                elif mtype == ofp.OFPT_ECHO_REQUEST:
                    self._send(P.OFPEchoReply(codec._DP, body), xid)
                elif mtype == ofp.OFPT_EXPERIMENTER and not self.bundles:
                    code = ofp.OFPBRC_BAD_EXPERIMENTER
                    self._error(xid, ofp.OFPET_BAD_REQUEST, code, head + body)
                elif mtype == ofp.OFPT_EXPERIMENTER:
                    exp, exp_type = struct.unpack_from("!II", body)
                    assert exp == ONF
                    if exp_type == ofp.ONF_ET_BUNDLE_ADD_MESSAGE:
                        self._add(xid, body)
                    elif not self._control(xid, body):
                        return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _add(self, xid: int, body: bytes) -> None:
        bundle_id, flags = struct.unpack_from("!I2xH", body, 8)
        inner = body[16:]
        self.log.append(("add", bundle_id))
        if flags != FLAGS or codec.header(inner)[3] != xid:
            self.bad_adds.append(f"xid {xid}: flags {flags}, inner xid {codec.header(inner)[3]}")
        if bundle_id not in self.open:
            self._onf_error(xid, ofp.ONFERR_ET_BAD_ID)
        elif inner[1] == ofp.OFPT_FLOW_MOD and inner[8 + 16] == 7:  # table_id, after cookies
            self._error(xid, ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_BAD_TABLE_ID, inner)
        else:
            self.open[bundle_id].append((xid, inner))

    def _control(self, xid: int, body: bytes) -> bool:
        """Handle open/commit/discard; False to hang up."""
        bundle_id, type_, flags = struct.unpack_from("!IHH", body, 8)
        assert flags == FLAGS
        if type_ == ofp.ONF_BCT_OPEN_REQUEST:
            self.log.append(("open", bundle_id))
            if bundle_id in self.open:
                self._onf_error(xid, ofp.ONFERR_ET_BUNDLE_EXIST)
            else:
                self.open[bundle_id] = []
                self._reply(bundle_id, ofp.ONF_BCT_OPEN_REPLY, xid)
        elif type_ == ofp.ONF_BCT_DISCARD_REQUEST:
            self.log.append(("discard", bundle_id))
            if self.open.pop(bundle_id, None) is None:
                self._onf_error(xid, ofp.ONFERR_ET_BAD_ID)
            else:
                self._reply(bundle_id, ofp.ONF_BCT_DISCARD_REPLY, xid)
        elif type_ == ofp.ONF_BCT_COMMIT_REQUEST:
            self.log.append(("commit", bundle_id))
            if self.on_commit != "answer":
                return self.on_commit == "ignore"
            self._commit(bundle_id, xid)
        return True

    def _commit(self, bundle_id: int, xid: int) -> None:
        msgs = self.open.pop(bundle_id)
        failed = self._first_failure(msgs)
        if failed is None and not self.commit_error_only:
            self.applied += [inner for _, inner in msgs]
            self.groups |= self._group_adds(msgs)
            self._reply(bundle_id, ofp.ONF_BCT_COMMIT_REPLY, xid)
            return
        if failed is not None:
            self._error(*failed)  # the message's error, under its add's xid, first
        self._onf_error(xid, ofp.ONFERR_ET_FAILED)

    @staticmethod
    def _group_adds(msgs: list[tuple[int, bytes]]) -> set[int]:
        out = set()
        for _, inner in msgs:
            if inner[1] == ofp.OFPT_GROUP_MOD:
                command, _, group_id = struct.unpack_from("!HBxI", inner, 8)
                if command == ofp.OFPGC_ADD:
                    out.add(group_id)
        return out

    def _first_failure(self, msgs: list[tuple[int, bytes]]) -> tuple[int, int, int, bytes] | None:
        """What would fail when applied, in order: (add xid, error type, code, message)."""
        groups = set(self.groups)
        for xid, inner in msgs:
            if inner[1] == ofp.OFPT_GROUP_MOD:
                command, _, group_id = struct.unpack_from("!HBxI", inner, 8)
                if command == ofp.OFPGC_ADD and group_id in groups:
                    return xid, ofp.OFPET_GROUP_MOD_FAILED, ofp.OFPGMFC_GROUP_EXISTS, inner
                groups.add(group_id)
            elif inner[1] == ofp.OFPT_FLOW_MOD and self.check_groups:
                _, mtype, length, _ = codec.header(inner)
                rule = codec._flow_rule(ofproto_parser.msg(codec._DP, 4, mtype, length, xid, inner))
                if any(isinstance(a, ToGroup) and a.group_id not in groups for a in rule.actions):
                    return xid, ofp.OFPET_BAD_ACTION, ofp.OFPBAC_BAD_OUT_GROUP, inner
        return None


def _flow(i: int, table: int = 0, group: int | None = None) -> FlowRule:
    actions = (ToGroup(group),) if group is not None else (LoadReg(0, 1, 1), Output(2))
    match = Match(in_port=1, regs=with_regs({8: (i & 0xFFFF, 0xFFFF)}))
    return FlowRule(table, 100 + i % 1000, match, actions, cookie=i)


GROUP = GroupRule(5, GroupType.ALL, (Bucket((LoadReg(8, 1), Resubmit(3))), Bucket((Output(1),))))


async def test_a_bundle_commits_everything_in_one_ordered_go() -> None:
    switch = BundleSwitch(check_groups=True)
    session, task = await _connect(switch)  # type: ignore[arg-type]
    changes = ChangeSet(group_adds=(GROUP,), flow_adds=(_flow(1), _flow(2, group=5)))
    msgs = codec.change_messages(changes)
    await session.apply_bundle(msgs)
    assert len(switch.applied) == len(msgs)
    for msg, inner in zip(msgs, switch.applied, strict=True):
        assert inner == codec.encode(msg, codec.header(inner)[3])
    first = switch.log[0][1]
    assert switch.log == [("open", first), *[("add", first)] * 3, ("barrier",), ("commit", first)]
    assert switch.bad_adds == []
    # the next bundle has its own id
    await session.apply_bundle([codec.flow_add(_flow(3))])
    assert switch.log[-1] == ("commit", first + 1)
    assert len(switch.applied) == 4 and not switch.open
    await session.apply_bundle([])  # nothing to do: nothing sent
    assert switch.log[-1] == ("commit", first + 1)
    session.close()
    await task


async def test_an_invalid_add_discards_the_bundle_and_is_named() -> None:
    """Open vSwitch would commit the rest without it: the session must discard instead."""
    switch = BundleSwitch()
    session, task = await _connect(switch)  # type: ignore[arg-type]
    msgs = [codec.flow_add(_flow(0)), codec.flow_add(_flow(1)), codec.flow_add(_flow(2, table=7))]
    with pytest.raises(BatchError) as info:
        await session.apply_bundle(msgs)
    assert list(info.value.failures) == [2]
    assert info.value.failures[2].text() == "FLOW_MOD_FAILED/BAD_TABLE_ID"
    assert "message 2" in str(info.value) and "FLOW_MOD_FAILED/BAD_TABLE_ID" in str(info.value)
    assert "discarded" in str(info.value)
    assert [e[0] for e in switch.log] == ["open", "add", "add", "add", "barrier", "discard"]
    assert switch.applied == [] and switch.open == {}
    session.close()
    await task


@pytest.mark.parametrize(
    ("msgs", "index", "text"),
    [
        ([codec.flow_add(_flow(0)), codec.group_add(GROUP)], 1, "GROUP_MOD_FAILED/GROUP_EXISTS"),
        ([codec.flow_add(_flow(0)), codec.flow_add(_flow(1, group=9))], 1, "BAD_OUT_GROUP"),
    ],
    ids=["group-exists", "missing-group"],
)
async def test_a_failed_commit_names_the_message_and_the_switch_text(
    msgs: list[object], index: int, text: str
) -> None:
    switch = BundleSwitch(groups=[5], check_groups=True)
    session, task = await _connect(switch)  # type: ignore[arg-type]
    with pytest.raises(BatchError) as info:
        await session.apply_bundle(msgs)
    assert list(info.value.failures) == [index]
    assert text in info.value.failures[index].text()
    assert text in str(info.value) and "ONFBFC_MSG_FAILED" in str(info.value)
    assert switch.applied == []
    # the session is still in step: a good bundle goes through afterwards
    await session.apply_bundle([codec.flow_add(_flow(0))])
    assert len(switch.applied) == 1
    session.close()
    await task


async def test_a_failed_commit_naming_no_message_is_under_the_bundle_index() -> None:
    switch = BundleSwitch(commit_error_only=True)
    session, task = await _connect(switch)  # type: ignore[arg-type]
    msgs = [codec.flow_add(_flow(0)), codec.flow_add(_flow(1))]
    with pytest.raises(BatchError) as info:
        await session.apply_bundle(msgs)
    assert list(info.value.failures) == [len(msgs)]
    error = info.value.failures[len(msgs)]
    assert (error.type, error.code, error.experimenter) == (0xFFFF, 2313, ONF)
    assert "bundle commit rejected (EXPERIMENTER/ONFBFC_MSG_FAILED)" in str(info.value)
    session.close()
    await task


async def test_a_switch_without_bundles_fails_the_open() -> None:
    switch = BundleSwitch(bundles=False)
    session, task = await _connect(switch)  # type: ignore[arg-type]
    with pytest.raises(BatchError) as info:
        await session.apply_bundle([codec.flow_add(_flow(0))])
    assert list(info.value.failures) == [1]
    assert "bundle open rejected: BAD_REQUEST/BAD_EXPERIMENTER" in str(info.value)
    await session.barrier()  # the discard's error was consumed, the session goes on
    session.close()
    await task


async def test_a_switch_that_hangs_up_on_commit_closes_the_bundle_call() -> None:
    switch = BundleSwitch(on_commit="hang up")
    session, task = await _connect(switch)  # type: ignore[arg-type]
    with pytest.raises(SessionClosed):
        await session.apply_bundle([codec.flow_add(_flow(0))])
    await asyncio.wait_for(task, 5)
    assert not session._pending and not session._batch_of


async def test_a_switch_that_never_answers_the_commit_times_out() -> None:
    switch = BundleSwitch(on_commit="ignore")
    session, task = await _connect(switch, request_timeout=0.2)  # type: ignore[arg-type]
    with pytest.raises(SessionClosed, match="did not answer"):
        await session.apply_bundle([codec.flow_add(_flow(0))])
    assert not session._pending and not session._batch_of
    session.close()
    await task


class _CountingReads(Sequence[object]):
    """A lazy batch that counts how many of its messages have been read."""

    def __init__(self, msgs: Sequence[object]) -> None:
        self.msgs = msgs
        self.reads = 0

    def __len__(self) -> int:
        return len(self.msgs)

    def __getitem__(self, index: int) -> object:  # type: ignore[override]
        self.reads += 1
        return self.msgs[index]


async def test_a_20000_message_bundle_lets_the_loop_run_between_chunks() -> None:
    """Other tasks get turns while the bundle is encoded: a task polling the number of
    messages read sees it stop between 0 and the end once per chunk (without the yields it
    would see only 0 and then everything)."""
    switch = BundleSwitch()
    session, task = await _connect(switch)  # type: ignore[arg-type]
    n = 20_000
    msgs = _CountingReads(codec.change_messages(ChangeSet(flow_adds=tuple(map(_flow, range(n))))))
    seen: set[int] = set()

    async def other_work() -> None:
        while True:
            seen.add(msgs.reads)
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    await session.apply_bundle(msgs)
    ticker.cancel()
    between = {reads for reads in seen if 0 < reads < n}
    assert len(between) >= n // ENCODE_CHUNK - 1
    assert len(switch.applied) == n
    assert switch.bad_adds == []
    session.close()
    await task


async def test_errors_and_replies_of_other_requests_are_not_mixed_in() -> None:
    """A plain batch and a bundle at the same time: each gets only its own errors."""
    switch = BundleSwitch()
    session, task = await _connect(switch)  # type: ignore[arg-type]
    flows = [codec.flow_add(_flow(i)) for i in range(3)]
    bad = [codec.flow_add(_flow(0, table=7))]
    results = await asyncio.gather(
        session.apply_bundle(flows), session.apply_bundle(bad), return_exceptions=True
    )
    assert results[0] is None
    assert isinstance(results[1], BatchError) and list(results[1].failures) == [0]
    assert len(switch.applied) == 3
    session.close()
    await task


def test_bundle_reply_kinds_are_the_onf_reply_types() -> None:
    assert m.BundleReplyKind.OPEN.value == ofp.ONF_BCT_OPEN_REPLY
    assert m.BundleReplyKind.CLOSE.value == ofp.ONF_BCT_CLOSE_REPLY
    assert m.BundleReplyKind.COMMIT.value == ofp.ONF_BCT_COMMIT_REPLY
    assert m.BundleReplyKind.DISCARD.value == ofp.ONF_BCT_DISCARD_REPLY
