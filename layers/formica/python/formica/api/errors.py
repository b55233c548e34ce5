"""API errors and THE mapping of every error to an HTTP status and body.

Route logic raises ``ApiError`` subclasses, or lets domain errors (``DefinitionError``,
``DefinitionTooLargeError``, ``DefinitionNotFoundError``, ``InvalidCursorError``, ...) escape;
``to_api_error`` translates those by type, never by message text. Anything it does not know is an
internal error: 500, a correlation id, and no internals in the body.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from formica.jobs.errors import problem_text


class ErrorDetail(BaseModel):
    """One reason a request was refused; ``line`` and ``task_type`` point into an uploaded definition."""

    message: str
    field: str | None = None
    line: int | None = None
    task_type: str | None = None
    text: str = Field(
        default="",
        description='the reason as one line, as `formica validate` prints it: `line 7, task "one": message` '
        "(`field: message` when there is no line); filled from the other fields",
    )

    @model_validator(mode="after")
    def _text_from_the_fields(self) -> ErrorDetail:
        if not self.text:
            self.text = problem_text(self.message, line=self.line, task_type=self.task_type, field=self.field)
        return self


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, ...")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    correlation_id: str | None = Field(
        default=None, description="Set on internal errors; quote it to operators."
    )


class ApiError(Exception):
    """An error with a status and a stable code; its message is safe to show to the caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def body(self, correlation_id: str | None = None) -> ErrorResponse:
        return ErrorResponse(
            error=self.code, message=self.message, details=self.details, correlation_id=correlation_id
        )


class ValidationApiError(ApiError):
    status = 400
    code = "VALIDATION_ERROR"


class UnauthorizedError(ApiError):
    status = 401
    code = "UNAUTHORIZED"


class ForbiddenError(ApiError):
    """The token is valid but lacks the scope the route needs (the message names it)."""

    status = 403
    code = "FORBIDDEN"


class ResourceNotFoundError(ApiError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowedError(ApiError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class ConflictError(ApiError):
    status = 409
    code = "CONFLICT"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaTypeError(ApiError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class ServiceUnavailableError(ApiError):
    """This API was built without a part the route needs (a host without a config store): the
    caller's request is not at fault, and no correlation id is needed to say why."""

    status = 503
    code = "SERVICE_UNAVAILABLE"


class InternalError(ApiError):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self) -> None:
        super().__init__("internal server error")


def _problem_details(problems: list[Any]) -> list[ErrorDetail]:
    return [
        ErrorDetail(
            message=str(getattr(problem, "message", problem)),
            field=getattr(problem, "field", None),
            line=getattr(problem, "line", None),
            task_type=getattr(problem, "task_type", None),
        )
        for problem in problems
    ]


def validation_details(errors: list[dict[str, Any]], body: str | bytes | None = None) -> list[ErrorDetail]:
    """Pydantic-style errors (``loc``, ``msg``) as details; the input values are left out on purpose.

    Parameters
    ----------
    errors
        The errors of the request's validation (powertools' ``RequestValidationError.errors()``).
    body
        The request body, when the errors came from it: a JSON syntax error (whose ``loc`` is a
        character offset) is told as a line and column of it.

    Returns
    -------
    list[ErrorDetail]
        One per error; an unknown field gets the closest known one as a hint.
    """
    details = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid" and len(loc) == 2 and isinstance(loc[1], int):
            reason = str((error.get("ctx") or {}).get("error") or "JSON decode error")
            details.append(ErrorDetail(message=json_error_message(reason, body, loc[1]), field="body"))
            continue
        location = ".".join(str(part) for part in loc if part != "body" or len(loc) == 1)
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "extra_forbidden" and loc:
            message += _did_you_mean(str(loc[-1]), _request_field_names())
        details.append(ErrorDetail(message=message, field=location or None))
    return details


def json_error_message(reason: str, document: str | bytes | None, position: int) -> str:
    """``the body is not valid JSON: REASON at line L, column C`` (a character offset of ``document``)."""
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    if text is None or not 0 <= position <= len(text):
        return f"the body is not valid JSON: {reason} (at character {position})"
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"the body is not valid JSON: {reason} at line {line}, column {column}"


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _request_field_names() -> list[str]:
    """The fields of every request body model (``formica.api.models``): what a typo was meant to be."""
    # Cold start: the authorizer maps errors here and never loads the request models.
    from formica.api import models  # noqa: PLC0415

    names: set[str] = set()
    pending: list[type[BaseModel]] = [models.RequestModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        names.update(info.alias or name for name, info in model.model_fields.items())
    return sorted(names)


def to_api_error(exc: BaseException) -> ApiError:
    """The one mapping from any exception to the API error it answers as.

    Unknown exceptions become ``InternalError``: the caller logs them with a correlation id.
    """
    if isinstance(exc, ApiError):
        return exc
    # Cold start: the authorizer maps errors too and never loads the event handler.
    from aws_lambda_powertools.event_handler.openapi.exceptions import (  # noqa: PLC0415
        RequestUnsupportedContentType,
    )

    if isinstance(exc, RequestUnsupportedContentType):
        return UnsupportedMediaTypeError("send JSON (Content-Type: application/json)")
    # Cold start: the authorizer maps its errors here and never loads the language or these stores.
    from formica.jobs.errors import DefinitionError, DefinitionTooLargeError  # noqa: PLC0415
    from formica.store.configs import ConfigExistsError, ConfigNotFoundError  # noqa: PLC0415
    from formica.store.definitions import (  # noqa: PLC0415
        DefinitionNotFoundError,
        DefinitionTooLargeToStoreError,
    )
    from formica.store.pagination import InvalidCursorError  # noqa: PLC0415
    from formica.store.requests import (  # noqa: PLC0415
        RequestFinishedError,
        RequestNotFinishedError,
        RequestNotFoundError,
        StepConflictError,
    )
    from formica.store.tokens import TokenNameTakenError, TokenNotFoundError  # noqa: PLC0415

    if isinstance(exc, DefinitionTooLargeError):
        return PayloadTooLargeError(str(exc), _problem_details(list(exc.problems)))
    if isinstance(exc, DefinitionError):
        return ValidationApiError("invalid job definition", _problem_details(list(exc.problems)))
    if isinstance(exc, DefinitionNotFoundError):
        return ResourceNotFoundError(str(exc))
    if isinstance(exc, DefinitionTooLargeToStoreError):
        return PayloadTooLargeError(str(exc))
    if isinstance(exc, InvalidCursorError):
        return ValidationApiError(str(exc), [ErrorDetail(message=str(exc), field="next_token")])
    if isinstance(exc, TokenNotFoundError):
        return ResourceNotFoundError(str(exc))
    if isinstance(exc, TokenNameTakenError):
        return ConflictError(str(exc), [ErrorDetail(message=str(exc), field="name")])
    if isinstance(exc, ConfigNotFoundError):
        return ResourceNotFoundError(str(exc))
    if isinstance(exc, ConfigExistsError):
        return ConflictError(str(exc), [ErrorDetail(message=str(exc), field="name")])
    if isinstance(exc, RequestNotFoundError):
        return ResourceNotFoundError(f"job request {exc.request_id!r} not found")
    if isinstance(exc, RequestFinishedError):
        return ConflictError(f"job request {exc.request_id!r} already finished ({exc.job_state})")
    if isinstance(exc, RequestNotFinishedError):
        return ConflictError(f"job request {exc.request_id!r} has not finished ({exc.job_state})")
    if isinstance(exc, StepConflictError):
        return ConflictError(f"job request {exc.request_id!r} changed meanwhile; try again")
    return InternalError()
