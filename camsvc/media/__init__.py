"""Snapshots, the media catalogue (SQLite), the file methods' library, storage and retention."""

__all__: list[str] = []
