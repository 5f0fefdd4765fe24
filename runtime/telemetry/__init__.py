"""Traces and metrics through OpenTelemetry: a local span store, OTLP export, Prometheus exposition.

`instruments` is what the rest of the code records with (the tracer, the GenAI metric instruments,
whether content may be captured); `pipeline` installs the SDK's providers once per process and
attaches each running server's exporters; `middleware` opens the server span of every request.
"""
