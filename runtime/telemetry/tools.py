"""Tool calls: an `execute_tool <name>` span per call the server runs, and the `pocketstack.tool.calls` counter.

Named and described by the OpenTelemetry GenAI conventions (`gen_ai.operation.name` execute_tool,
`gen_ai.tool.name`, `gen_ai.tool.type`, `gen_ai.tool.call.id`); the call's arguments and result
only with `telemetry.capture_content` (they are the user's data as much as a prompt is). The span
is current while the tool works, so what the tool does (a vector search, an MCP server's HTTP
requests carrying `traceparent`) sits under it.

Calls the server hands to the client to run (Responses' function tools, an agent's client tools)
get no span: nothing runs here, so a span would show an execution, and a duration, that did not
happen on this server; the client's own instrumentation records the real one. They are an event on
the span that handed them over (`handed_to_client`), and count in the counter with that outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from pocketstack.telemetry import instruments

# gen_ai.tool.type values (the conventions'): what runs the tool.
FUNCTION = "function"  # the client's code
EXTENSION = "extension"  # a service the agent calls: an MCP server, a web search engine
DATASTORE = "datastore"  # the agent's own data: file_search over vector stores, knowledge_search

# Newer conventions than the installed opentelemetry-semantic-conventions name them; no constants yet.
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
OUTCOME = "pocketstack.tool.outcome"
RESULT_COUNT = "pocketstack.tool.result_count"  # the hits a search tool returned (file_search, web search)
HANDED_TO_CLIENT_EVENT = "pocketstack.tool.handed_to_client"

# pocketstack.tool.outcome values: a bounded set, as the counter's label must be.
OK = "ok"
ERROR = "error"  # the tool answered with an error, or raised
CANCELLED = "cancelled"  # its caller went away while it ran
APPROVAL_REQUESTED = "approval_requested"  # an MCP call that waits for the user's approval (nothing ran)
DECLINED = "declined"  # the user did not approve it (nothing ran)
HANDED_TO_CLIENT = "handed_to_client"
TOOL_ERROR = "tool_error"  # error.type of a tool that answered with an error (its message is free text)

tool_calls = instruments.meter.create_counter(
    "pocketstack.tool.calls",
    unit="{call}",
    description="Tool calls, by tool name, tool type and outcome (client functions: handed to the client).",
)

# Tool names label the counter. Server tools are bounded by configuration (MCP servers' listings,
# registered tool groups), but the names of calls handed to the client are whatever the model wrote:
# past this many distinct names, the rest count as OTHER_TOOL, so a model cannot grow the metrics.
MAX_TOOL_NAMES = 256
OTHER_TOOL = "_other"
_names: set[str] = set()
_names_lock = Lock()


def bounded_name(name: str) -> str:
    if name in _names:
        return name
    with _names_lock:
        if len(_names) < MAX_TOOL_NAMES:
            _names.add(name)
            return name
    return OTHER_TOOL


def _count(name: str, tool_type: str, outcome: str) -> None:
    tool_calls.add(
        1, {gen_ai.GEN_AI_TOOL_NAME: bounded_name(name), gen_ai.GEN_AI_TOOL_TYPE: tool_type, OUTCOME: outcome}
    )


class ToolCall:
    """One call's span; `executing` makes it current, ends it and counts it."""

    def __init__(self, name: str, tool_type: str, call_id: str | None) -> None:
        self.name = name
        self.tool_type = tool_type
        self.outcome = OK
        self.span = instruments.tracer.start_span(
            f"execute_tool {name}", kind=SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False
        )
        if self.span.is_recording():
            attributes = {
                gen_ai.GEN_AI_OPERATION_NAME: gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value,
                gen_ai.GEN_AI_TOOL_NAME: name,
                gen_ai.GEN_AI_TOOL_TYPE: tool_type,
            }
            if call_id:
                attributes[gen_ai.GEN_AI_TOOL_CALL_ID] = call_id
            self.span.set_attributes(attributes)

    @property
    def capturing(self) -> bool:
        """Whether the call's arguments and result go on its span (`telemetry.capture_content`)."""
        return self.span.is_recording() and instruments.capture_content()

    def arguments(self, arguments: str | None) -> None:
        if arguments is not None and self.capturing:
            self.span.set_attribute(TOOL_CALL_ARGUMENTS, arguments)

    def answered(self, result: str | None = None, *, error: str | None = None, outcome: str | None = None) -> None:
        """What the tool said: its result, or its error (a message for the model, not an exception)."""
        self.outcome = outcome or (ERROR if error is not None else OK)
        span = self.span
        if not span.is_recording():
            return
        if error is not None:
            span.set_attribute(ERROR_TYPE, TOOL_ERROR)
            # the message may quote the arguments: the status says it only when content may be captured
            span.set_status(Status(StatusCode.ERROR, error if instruments.capture_content() else None))
        if result is not None and instruments.capture_content():
            span.set_attribute(TOOL_CALL_RESULT, result)

    def results(self, count: int) -> None:
        if self.span.is_recording():
            self.span.set_attribute(RESULT_COUNT, count)

    def raised(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.outcome = CANCELLED
            self.span.set_attribute(ERROR_TYPE, CANCELLED)
            return
        self.outcome = ERROR
        self.span.set_attribute(ERROR_TYPE, type(exc).__name__)
        self.span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        if self.span.is_recording():
            self.span.set_attribute(OUTCOME, self.outcome)
        self.span.end()
        _count(self.name, self.tool_type, self.outcome)


@contextmanager
def executing(
    name: str, tool_type: str, *, call_id: str | None = None, arguments: str | None = None
) -> Iterator[ToolCall]:
    """The span of one tool call, current while the tool runs; an exception out of it marks the span."""
    call = ToolCall(name, tool_type, call_id)
    call.arguments(arguments)
    token = otel_context.attach(trace.set_span_in_context(call.span))
    try:
        yield call
    except BaseException as exc:
        call.raised(exc)
        raise
    finally:
        otel_context.detach(token)
        call.end()


def handed_to_client(name: str, call_id: str | None, arguments: str | None) -> None:
    """A call the client runs: an event on the current span (the agent's), and the counter."""
    span = trace.get_current_span()
    if span.is_recording():
        attributes = {gen_ai.GEN_AI_TOOL_NAME: name, gen_ai.GEN_AI_TOOL_TYPE: FUNCTION}
        if call_id:
            attributes[gen_ai.GEN_AI_TOOL_CALL_ID] = call_id
        if arguments is not None and instruments.capture_content():
            attributes[TOOL_CALL_ARGUMENTS] = arguments
        span.add_event(HANDED_TO_CLIENT_EVENT, attributes)
    _count(name, FUNCTION, HANDED_TO_CLIENT)
