"""OpenFlow over TLS on the real lab: `vtap lab up --tls` connects every switch with `ssl:`,
TAP copies flow as over TCP, and only a peer holding a certificate of the switch CA gets a
session: plain TCP and a TLS client without a certificate are refused."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fuzzswitch import HEADER, FuzzSwitch, read_message
from tests.integration.labkit import Lab, edge_ports_ready, fabric_complete, running_lab, wait_until
from tests.integration.test_faults import _stream_copied_once, active_h1_to_h3
from vtap.pki import Pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("vtap-state"), "--tls") as lab:
        wait_until(lambda: fabric_complete(lab) and edge_ports_ready(lab), timeout=40)
        yield lab


def _tls_hello(port: int, context: ssl.SSLContext) -> bytes:
    """Open TLS, say HELLO, return the first message (the controller's HELLO) or raise."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw) as tls:
        tls.sendall(HEADER.pack(4, 0, 8, 1))
        return read_message(tls)[2]


def test_switches_connect_over_tls_and_copies_flow(lab: Lab, tmp_path: Path) -> None:
    assert lab.vsctl("get-controller", "leaf1").strip() == "ssl:127.0.0.1:6653"
    api = lab.client()
    active_h1_to_h3(api, "tls", 5031)
    _stream_copied_once(lab, tmp_path, "tls")


def test_only_holders_of_a_switch_certificate_get_a_session(lab: Lab) -> None:
    port = lab.state["of_port"]
    plain = FuzzSwitch(port, 0xBAD)
    assert plain.deliver([]) is False and plain.sessions == 0  # TCP at a TLS port: nothing

    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _tls_hello(port, anonymous)  # no client certificate: the handshake fails

    pki = Pki(lab.state_dir / "pki")
    switch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    switch.check_hostname = False
    switch.load_verify_locations(pki.controller_ca)  # and the controller proves itself
    switch.load_cert_chain(pki.cert("switch"), pki.key("switch"))
    hello = _tls_hello(port, switch)
    assert struct.unpack_from("!BB", hello) == (4, 0)  # a session: the controller's HELLO
