"""What the code records with: one tracer, one meter, and the instruments named by the semantic conventions.

Everything here uses the OpenTelemetry API only; until `pipeline.install` runs, spans and
measurements go nowhere at almost no cost. Histogram buckets are the conventions' advisory
boundaries (GenAI metrics and HTTP server metrics), so dashboards built for them read ours.
"""

from __future__ import annotations

from opentelemetry import metrics, trace

tracer = trace.get_tracer("pocketstack")
meter = metrics.get_meter("pocketstack")

# gen_ai.client.operation.duration / gen_ai.server.request.duration
GEN_AI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
GEN_AI_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
GEN_AI_TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
GEN_AI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]

http_server_duration = meter.create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Duration of HTTP server requests (by route, method and status).",
    explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
)
http_server_active = meter.create_up_down_counter(
    "http.server.active_requests", unit="{request}", description="HTTP requests being served."
)
gen_ai_server_duration = meter.create_histogram(
    "gen_ai.server.request.duration",
    unit="s",
    description="Generative AI server request duration, from the request to its last token.",
    explicit_bucket_boundaries_advisory=GEN_AI_DURATION_BUCKETS,
)
gen_ai_server_ttft = meter.create_histogram(
    "gen_ai.server.time_to_first_token",
    unit="s",
    description="Time to generate the first token of a successful response.",
    explicit_bucket_boundaries_advisory=GEN_AI_TTFT_BUCKETS,
)
gen_ai_server_tpot = meter.create_histogram(
    "gen_ai.server.time_per_output_token",
    unit="s",
    description="Time per output token generated after the first one, for successful responses.",
    explicit_bucket_boundaries_advisory=GEN_AI_TPOT_BUCKETS,
)
gen_ai_token_usage = meter.create_histogram(
    "gen_ai.client.token.usage",
    unit="{token}",
    description="Input and output tokens used (gen_ai.token.type says which).",
    explicit_bucket_boundaries_advisory=GEN_AI_TOKEN_BUCKETS,
)
gen_ai_client_duration = meter.create_histogram(
    "gen_ai.client.operation.duration",
    unit="s",
    description="Generative AI operation duration as PocketStack sees it calling a provider.",
    explicit_bucket_boundaries_advisory=GEN_AI_DURATION_BUCKETS,
)

_capture_content = False


def capture_content() -> bool:
    """Whether prompt and completion text may go on spans (`telemetry.capture_content`; off by default)."""
    return _capture_content


def set_capture_content(enabled: bool) -> None:
    global _capture_content
    _capture_content = enabled
