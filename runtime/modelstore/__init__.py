"""The model store: GGUF files under POCKETSTACK_HOME/models, the embedded defaults, imports."""
