"""The use cases: what mlci does, composed from the core; every command calls one of these."""
