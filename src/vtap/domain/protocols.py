"""IP protocols by name, as operators type them (`tcp`, `udp`, …) or by number."""

from __future__ import annotations

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
NAMES = {number: name for name, number in PROTOCOLS.items()}


def parse_proto(text: str | None) -> int | None:
    """`tcp`, `udp`, `icmp`, `icmpv6` or a protocol number 0-255; ValueError otherwise."""
    if text is None or text == "":
        return None
    value = PROTOCOLS.get(text.strip().lower())
    if value is None:
        value = int(text)
    if not 0 <= value <= 255:
        raise ValueError(text)
    return value
