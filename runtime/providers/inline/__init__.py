"""Providers that run inside the server process and need no network."""
