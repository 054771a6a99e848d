"""A private PKI for OpenFlow over TLS, made with Open vSwitch's own `ovs-pki`.

Two CAs, as OVS expects: switches trust the controller CA, the controller trusts the switch CA.
So a switch must hold a certificate the switch CA signed to connect at all, and a switch talks
only to a controller whose certificate the controller CA signed. Keys never leave the directory
(mode 0700).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vtap.errors import VtapError


@dataclass(frozen=True)
class Pki:
    directory: Path

    @property
    def ca_dir(self) -> Path:
        return self.directory / "pki"

    @property
    def switch_ca(self) -> Path:
        """What the controller verifies switches against."""
        return self.ca_dir / "switchca" / "cacert.pem"

    @property
    def controller_ca(self) -> Path:
        """What switches verify the controller against."""
        return self.ca_dir / "controllerca" / "cacert.pem"

    def key(self, who: str) -> Path:
        return self.directory / f"{who}-privkey.pem"

    def cert(self, who: str) -> Path:
        return self.directory / f"{who}-cert.pem"

    @property
    def complete(self) -> bool:
        files = (self.switch_ca, self.controller_ca, self.key("controller"),
                 self.cert("controller"), self.key("switch"), self.cert("switch"))  # fmt: skip
        return all(f.is_file() for f in files)

    def missing(self) -> str | None:
        """None when the directory holds a usable PKI; otherwise what to do."""
        if self.complete:
            return None
        return f"no PKI in {self.directory}; create one with `vtap pki init`"


def _ovs_pki() -> str:
    found = shutil.which("ovs-pki")
    if found is None:
        raise VtapError("ovs-pki not found (Debian package openvswitch-common)")
    return found


def init_pki(directory: Path, force: bool = False) -> Pki:
    """Create both CAs and one certificate each for the controller and the switches."""
    pki = Pki(directory)
    if pki.ca_dir.exists():
        if not force:
            raise VtapError(f"{pki.ca_dir} exists already; use --force to make a new PKI")
        shutil.rmtree(pki.ca_dir)
        for who in ("controller", "switch"):
            for suffix in ("privkey", "cert", "req"):
                (directory / f"{who}-{suffix}.pem").unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    tool = _ovs_pki()
    base = [tool, f"--dir={pki.ca_dir}", f"--log={directory / 'pki.log'}"]
    steps = [
        [*base, "init"],
        # Relative prefixes (run in `directory`): the prefix goes into the certificate's
        # common name, which may not exceed 64 characters.
        [*base, "req+sign", "controller", "controller"],
        [*base, "req+sign", "switch", "switch"],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=directory)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            detail = reason[-1] if reason else f"see {directory / 'pki.log'}"
            raise VtapError(f"ovs-pki {argv[3]} failed: {detail}")
    return pki
