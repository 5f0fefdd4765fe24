"""The HTTP edge the generated route stubs call: request codec, uploads, middlewares, request context, runner."""
