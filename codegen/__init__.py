"""Generates PocketStack's models, route stubs, Protocols and SDKs from spec/openapi.yaml."""
