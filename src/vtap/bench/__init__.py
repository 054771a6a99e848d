"""Benchmarks: `vtap bench controlplane` (compiler scaling, policy throughput, apply latency,
controller restart). Results are written to files; nothing here asserts a speed."""
