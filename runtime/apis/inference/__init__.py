"""Inference: chat, completions and embeddings routed to providers (api), with guardrails around them."""
