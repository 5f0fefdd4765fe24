"""One error hierarchy; the error middleware turns each into the spec's `Error` body.

Providers translate backend exceptions into these at their boundary (`raise ... from exc`), so
the HTTP layer never guesses a status from a foreign exception.
"""

from __future__ import annotations

import errno
from typing import Any

SQLITE_FULL = 13  # SQLite's "database or disk is full", as sqlite3 (sqlite_errorcode) and apsw (result) carry it
_SQLITE_MODULES = frozenset({"sqlite3", "apsw"})


class PocketStackError(Exception):
    status = 500
    type = "internal_server_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


class BadRequestError(PocketStackError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(PocketStackError):
    status = 401
    type = "authentication_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.headers["WWW-Authenticate"] = "Bearer"


class PermissionDeniedError(PocketStackError):
    status = 403
    type = "permission_error"


class NotFoundError(PocketStackError):
    status = 404
    type = "not_found_error"


class ConflictError(PocketStackError):
    status = 409
    type = "conflict_error"


class PayloadTooLargeError(PocketStackError):
    status = 413
    type = "invalid_request_error"


class UnsupportedMediaTypeError(PocketStackError):
    status = 415
    type = "invalid_request_error"


class UpgradeRequiredError(PocketStackError):
    status = 426
    type = "client_version_error"


class TooManyRequestsError(PocketStackError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, code=code)
        self.headers["Retry-After"] = str(retry_after)


class NotImplementedByProviderError(PocketStackError):
    status = 501
    type = "not_implemented_error"


class UpstreamError(PocketStackError):
    """A remote provider answered badly or not at all."""

    status = 502
    type = "upstream_error"


class ServiceUnavailableError(PocketStackError):
    status = 503
    type = "service_unavailable_error"


class InsufficientStorageError(PocketStackError):
    """The disk under the server's home is full: nothing was stored (SQLite rolls back, a spooled upload is
    removed); reads go on, and writes work again once there is space."""

    status = 507
    type = "insufficient_storage_error"

    def __init__(self, message: str = "", *, code: str | None = "insufficient_storage") -> None:
        super().__init__(
            message
            or "The server's disk is full: nothing was stored. Free space where it keeps its state "
            "(POCKETSTACK_HOME), then try again.",
            code=code,
        )


def disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it came from, says the disk is full: ENOSPC or EDQUOT from the
    operating system, SQLITE_FULL from SQLite (through sqlite3 or apsw, which both say so in an attribute)."""
    current: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; a cycle must not loop forever
        if current is None:
            return False
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        for attribute in ("sqlite_errorcode", "result"):
            code = getattr(current, attribute, None)
            if isinstance(code, int) and code & 0xFF == SQLITE_FULL and type(current).__module__ in _SQLITE_MODULES:
                return True
        current = current.__cause__ or current.__context__
    return False


class UpstreamTimeoutError(PocketStackError):
    status = 504
    type = "timeout_error"


class UpstreamStatusError(PocketStackError):
    """A remote provider answered with an error status; the caller gets the same status."""

    type = "upstream_error"

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


# Llama Stack's wording, by the noun PocketStack names a kind with: its label, the client method that lists
# them and that list's name (llama_stack_api/common/errors.py: ModelNotFoundError, ResponseNotFoundError...).
# A kind not here reads "<Kind> '<id>' not found." as Llama Stack's routing tables word theirs.
_LLAMA_STACK_NOUNS: dict[str, tuple[str, str | None, str]] = {
    "model": ("Model", "models.list", "Models"),
    "response": ("Response", "responses.list", "Responses"),
    "conversation": ("Conversation", None, "Conversations"),
    "conversation item": ("Conversation item", "conversations.items.list", "conversation items"),
    "input item": ("Input item", "responses.input_items.list", "input items"),
    "file": ("File", "files.list", "Files"),
    "vector store": ("Vector Store", "vector_dbs.list", "Vector Stores"),
    "tool group": ("Tool Group", "toolgroups.list", "Tool Groups"),
    "dataset": ("Dataset", "datasets.list", "Datasets"),
    "batch": ("Batch", "batches.list", "Batches"),
    "connector": ("Connector", "connectors.list", "Connectors"),
}


def not_found_message(kind: str, identifier: str, *, parent: tuple[str, str] | None = None) -> str:
    """Llama Stack's not-found sentence (its `ResourceNotFoundError`): `Response 'resp_1' not found. Use
    'client.responses.list()' to list available Responses.`; `parent` (kind, id) for a child resource, whose
    id is also the list method's argument."""
    label, command, plural = _LLAMA_STACK_NOUNS.get(kind, (kind.capitalize(), None, ""))
    where = f" in {parent[0]} '{parent[1]}'" if parent is not None else ""
    message = f"{label} '{identifier}' not found{where}."
    if command is not None:
        argument = f'"{parent[1]}"' if parent is not None else ""
        message += f" Use 'client.{command}({argument})' to list available {plural}."
    return message


class ResourceNotFoundError(NotFoundError):
    def __init__(self, kind: str, identifier: str, *, parent: tuple[str, str] | None = None) -> None:
        super().__init__(not_found_message(kind, identifier, parent=parent), code=f"{kind.replace(' ', '_')}_not_found")


class StartupError(Exception):
    """The server cannot start; the message says why and what to do. The CLI prints it."""


def error_body(
    message: str, *, type: str | None = None, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    for key, value in (("type", type), ("code", code), ("param", param)):
        if value is not None:
            detail[key] = value
    return {"error": detail}
