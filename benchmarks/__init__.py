"""Benchmarks for camsvc: a WebSocket JSON-RPC load generator and the `make bench-rpc` driver.

Nothing here is imported by the service or by `tests/`; timings live here, never as assertions.
"""
