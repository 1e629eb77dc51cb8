"""Cameras as the service sees them: discovery of `videoN` nodes, the registry of
`cameraN` entries, and one supervised capture pump per camera."""

__all__: list[str] = []
