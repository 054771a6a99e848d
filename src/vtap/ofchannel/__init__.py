"""The OpenFlow 1.3 channel: wire codec, per-switch sessions, the listening server."""
