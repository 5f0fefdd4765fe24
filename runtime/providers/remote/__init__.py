"""Providers that relay to a remote service; they may be unreachable, and must not block start-up."""
