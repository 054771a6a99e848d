#!/usr/bin/env bash
# Installs what vtap needs on a fresh Debian 12 machine (as root): Debian packages first,
# then a virtualenv made from Debian's python3 so that Mininet's module (which lives in
# /usr/lib/python3/dist-packages) imports. Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(openvswitch-switch mininet tcpdump iperf3 iputils-ping iproute2 procps ethtool
              util-linux strace python3 python3-venv python3-dev chromium
              dpdk-dev openvswitch-switch-dpdk systemd)
# dpdk-dev: dpdk-testpmd, the endpoints of `vtap bench dataplane`; openvswitch-switch-dpdk:
# ovs-vswitchd-dpdk for its OVS-DPDK runs (installed beside the plain ovs-vswitchd, which
# stays the default: its alternative has the higher priority).
VENV=${VENV:-.venv}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# One bootstrap at a time: parallel `make` runs must not upgrade pip under each other.
exec 9>".bootstrap.lock"
flock 9

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtualenv $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing vtap into $VENV"
    # This machine's pip config lists local mirrors that may be absent: drop that noise only.
  "$VENV/bin/python" -m pip install -q -e '.[dev]' 2>&1 | { grep -v "^WARNING: Location" || true; }
  touch "$stamp"
fi
