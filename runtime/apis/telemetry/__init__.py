"""The Telemetry API: traces and spans read back from the local store (api), metrics derived from them (metrics)."""
