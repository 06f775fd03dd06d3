"""Close's error answers as exceptions, so any layer can refuse and the routes answer alike.

Close answers a bad request with 400 `{"errors": [...], "field-errors": {field: message}}`
and other refusals with `{"error": message}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ApiError(Exception):
    """An answer other than success: HTTP status and Close-shaped JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


class BadRequest(ApiError):
    """400 with `field-errors` (field path -> message) and general `errors`."""

    def __init__(self, field_errors: dict[str, str], errors: list[str] | None = None) -> None:
        super().__init__(400, {"errors": list(errors or []), "field-errors": dict(field_errors)})
        self.field_errors = dict(field_errors)


class NotFoundAnswer(ApiError):
    """404 `{"error": message}`: the sandbox's answer (the client raises `errors.NotFound`)."""

    def __init__(self, message: str = "Not found") -> None:
        super().__init__(404, {"error": message})


def found(items: Mapping[str, T], key: str, what: str) -> T:
    """`items[key]`, or the 404 Close answers for a `what` it does not have."""
    item = items.get(key)
    if item is None:
        raise NotFoundAnswer(f"{what} not found.")
    return item


QueryError = BadRequest  # a query Close would refuse: field path -> message
