"""Agents (Llama Stack's Agents API) on the Responses engine: the API (api) and the steps of a turn."""
