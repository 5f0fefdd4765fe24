"""PocketStack: a Llama-Stack-compatible AI application server that fits in a pocket."""

__version__ = "0.1.0"

# The Llama Stack release line whose wire API PocketStack speaks; `/v1/version` reports it and
# clients of another major.minor are answered 426.
LLAMA_STACK_VERSION = "0.7.3"
