"""`close-mcp check`'s verdicts and the shape checks every probe uses: an answer against the
keys and models the code reads, each difference named by its place (`data[0].label missing`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from close_mcp.close.budget import RATE_LIMIT, RATE_REMAINING, RATE_RESET
from close_mcp.close.times import close_time

ITEMS: Final = 10  # items asked of each list: enough to see the shape, few enough to be quick
# Timestamps close-mcp reads, by answer: each must be a timestamp (an offset, or none: UTC).
TIMESTAMPS: Final = ("date_created", "date_updated")


@dataclass(frozen=True)
class Verdict:
    """What one probe found: no problems means ok; `note` says what was looked at."""

    problems: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Row:
    endpoint: str
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return not self.verdict.problems


def _required(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, field in model.model_fields.items() if field.is_required())


def item_problems(
    item: Any, where: str, *, model: type[BaseModel] | None = None, keys: Iterable[str] = ()
) -> list[str]:
    """What in `item` differs from what the code reads: keys missing, values it cannot parse."""
    if not isinstance(item, dict):
        return [f"{where} is {type(item).__name__}, not an object"]
    wanted = dict.fromkeys([*(_required(model) if model else ()), *keys])
    problems = [f"{where}.{key} missing" for key in wanted if key not in item]
    if model is not None and not problems:
        try:
            model.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(part) for part in error["loc"])
                problems.append(f"{where}.{loc}: {error['msg']}")
    return problems


def list_problems(
    answer: Any,
    *,
    key: str = "data",
    model: type[BaseModel] | None = None,
    keys: Iterable[str] = (),
) -> tuple[list[str], list[Any]]:
    """The problems of a list answer (`{key: [...]}`) and its items."""
    if not isinstance(answer, dict):
        return [f"the answer is {type(answer).__name__}, not an object"], []
    items = answer.get(key)
    if not isinstance(items, list):
        return [f"{key} missing" if key not in answer else f"{key} is not a list"], []
    keys = tuple(keys)
    # The same problem in several items is said once: the first item, and how many more.
    seen: dict[str, list[str]] = {}
    for i, item in enumerate(items):
        for problem in item_problems(item, f"{key}[{i}]", model=model, keys=keys):
            seen.setdefault(problem.replace(f"{key}[{i}]", f"{key}[]", 1), []).append(problem)
    problems = [
        found[0] + (f" (and in {len(found) - 1} more items)" if len(found) > 1 else "")
        for found in seen.values()
    ]
    return problems, items


def timestamp_problems(item: Any, where: str) -> list[str]:
    """`date_created`/`date_updated` that `close_time` cannot read (absent ones are left to
    the key checks)."""
    if not isinstance(item, dict):
        return []
    return [
        f"{where}.{key}: {item[key]!r} is not a timestamp"
        for key in TIMESTAMPS
        if item.get(key) is not None and close_time(item[key]) is None
    ]


def rate_limit_problems(header: str | None) -> tuple[list[str], str]:
    """Close's `RateLimit: limit=100, remaining=50, reset=5`: absent is allowed (Close says
    it can be), anything else must have the three numbers the client paces by."""
    if header is None:
        return [], "no RateLimit header on this answer"
    missing = [
        name
        for name, rx in (
            ("limit", RATE_LIMIT),
            ("remaining", RATE_REMAINING),
            ("reset", RATE_RESET),
        )
        if rx.search(header) is None
    ]
    if missing:
        return [f"RateLimit {header!r}: no {', '.join(missing)}"], ""
    return [], f"RateLimit: {header}"


def counted(items: list[Any], what: str) -> str:
    return f"{what}: {len(items)} checked" if items else f"{what}: none yet, only the list checked"


Probe = Callable[[], Awaitable[Verdict]]
