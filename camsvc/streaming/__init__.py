"""Live streams through MediaMTX: its v3 client, one path per camera, the spawn supervisor,
stream URLs, and a stand-in for machines without MediaMTX (tests and demo mode)."""

__all__: list[str] = []
