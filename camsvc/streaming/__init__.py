"""Live streams through MediaMTX: stream URLs now; paths and publishers in later issues."""
