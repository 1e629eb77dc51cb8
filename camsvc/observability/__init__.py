"""Health, metrics, resource figures and alerts of the running service."""

__all__: list[str] = []
