"""JSON-RPC 2.0: the pure codec, the method registry, dispatch (order of checks, params,
errors), rate limits and the OpenRPC document. Only this package builds JSON-RPC errors."""

__all__: list[str] = []
