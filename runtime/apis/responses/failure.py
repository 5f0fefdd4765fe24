"""How a response fails, in the words OpenAI's clients know: `error.code` is one of OpenAI's codes (the set
Llama Stack's streaming.py keeps to, `_VALID_RESPONSE_ERROR_CODES`; anything else is `server_error`)."""

from __future__ import annotations

from pocketstack._generated import models
from pocketstack.errors import BadRequestError, PocketStackError, TooManyRequestsError
from pocketstack.wire.fields import given

CODES = frozenset(code.value for code in models.ResponseErrorCode)
# Llama Stack's words (streaming.py StreamingResponseOrchestrator.create_response).
TRUNCATION_AUTO = (
    "Truncation mode 'auto' is not supported. Use 'disabled' to let the inference provider reject oversized contexts."
)
UNEXPECTED = "An unexpected error occurred while generating the response."


def truncation_refused(request: models.CreateResponseRequest) -> PocketStackError | None:
    """Llama Stack fails a response with `truncation: "auto"` (`response.failed` streamed); unstreamed it answers
    500, which here is a 400: the request asks for what is not supported, nothing failed in the server."""
    truncation = given(request.truncation)
    if truncation is not None and getattr(truncation, "value", truncation) == "auto":
        return BadRequestError(TRUNCATION_AUTO, code="not_supported", param="truncation")
    return None


def response_error(exc: BaseException) -> dict[str, str]:
    """The response's `error` for what stopped it: a PocketStack error keeps its message (as Llama Stack keeps a
    provider's), anything else reads as Llama Stack's unexpected error."""
    if isinstance(exc, TooManyRequestsError):
        return {"code": "rate_limit_exceeded", "message": exc.message}
    if isinstance(exc, PocketStackError):
        return {"code": exc.code if exc.code in CODES else "server_error", "message": exc.message}
    return {"code": "server_error", "message": UNEXPECTED}
