"""Method handlers, one class per domain: validate params, call a service, shape the result."""

__all__: list[str] = []
