"""OpenFlow over TLS: `vtap pki init` makes both CAs and certificates with ovs-pki; the
controller's server admits a switch with a switch-CA certificate and nobody else."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from tests.unit.test_session import FakeSwitch
from vtap.errors import VtapError
from vtap.ofchannel.server import OpenFlowServer, tls_context
from vtap.ofchannel.session import SwitchSession
from vtap.pki import Pki, init_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"))


def test_init_makes_everything_once(pki: Pki) -> None:
    assert pki.complete and pki.missing() is None
    assert (pki.directory.stat().st_mode & 0o777) == 0o700
    with pytest.raises(VtapError, match="--force"):
        init_pki(pki.directory)
    assert "vtap pki init" in (Pki(Path("/nonexistent")).missing() or "")


def _client(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(pki.controller_ca)
    if with_cert:
        context.load_cert_chain(pki.cert("switch"), pki.key("switch"))
    return context


async def test_only_a_switch_with_a_certificate_gets_a_session(pki: Pki) -> None:
    joined: list[int] = []

    async def handler(session: SwitchSession) -> None:
        joined.append(session.dpid or 0)
        session.close()

    tls = tls_context(str(pki.cert("controller")), str(pki.key("controller")), str(pki.switch_ca))
    server = OpenFlowServer("127.0.0.1", 0, handler, tls=tls)
    await server.start()
    try:
        good = FakeSwitch(dpid=0x51)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=_client(pki, with_cert=True)
        )
        serving = asyncio.create_task(good.serve(reader, writer))
        async with asyncio.timeout(10):
            while not joined:
                await asyncio.sleep(0.01)
        assert joined == [0x51]
        await serving

        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=_client(pki, with_cert=False)
            )
            await asyncio.wait_for(reader.readexactly(8), 10)  # TLS 1.3: refused after connect
        assert joined == [0x51]
    finally:
        await server.close()
