"""The running stack: the provider plan, the registry and the resource tables every API shares."""
