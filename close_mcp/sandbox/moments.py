"""The moments of an `s_query` date condition (`now`, `fixed_utc`, `fixed_local_date`,
`offset`), resolved to UTC; local dates are days in the request's `X-TZ-Offset`."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any

from close_mcp.sandbox.errors import QueryError
from close_mcp.sandbox.store import JSON


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


MOMENT_BOUNDS = ("on_or_after", "after", "before", "on_or_before")
OFFSET_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


class Moments:
    """Resolves moments against one clock reading `now` and offset `tz`."""

    def __init__(self, now: datetime, tz: timedelta = timedelta(0)) -> None:
        self.now = now
        self.tz = tz

    def moment(self, moment: Any, path: str) -> datetime:
        """Resolve a moment to a UTC datetime; local dates are days in the offset `tz`.

        A moment outside the calendar (year 10000 once in UTC, now minus 5,000 years) is a
        400 naming it, as Close answers, never a crash.
        """
        try:
            return self._moment(moment, path)
        except (OverflowError, ValueError):
            raise QueryError({path: "Date out of range."}) from None

    def _moment(self, moment: Any, path: str) -> datetime:
        if not isinstance(moment, dict):
            raise QueryError({path: "Expected a moment object."})
        kind = moment.get("type")
        if kind == "now":
            return self.now
        if kind == "fixed_utc":
            value = moment.get("value")
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise QueryError({f"{path}.value": "Not a valid datetime."}) from None
            if not parsed.tzinfo:  # as strict as close-mcp's grammar: an instant has an offset
                raise QueryError(
                    {f"{path}.value": "A fixed_utc moment needs a UTC offset (Z or +00:00)."}
                )
            try:
                return parsed.astimezone(UTC)
            except OverflowError:
                raise QueryError({f"{path}.value": "Date out of range."}) from None
        if kind == "fixed_local_date":
            try:
                day = datetime.combine(
                    date.fromisoformat(str(moment.get("value"))), datetime.min.time(), tzinfo=UTC
                )
            except ValueError:
                raise QueryError({f"{path}.value": "Not a valid date (YYYY-MM-DD)."}) from None
            return self._which(day - self.tz, moment.get("which", "start"), f"{path}.which")
        if kind == "offset":
            return self._offset(moment, path)
        if kind is None:
            raise QueryError({f"{path}.type": "Missing data for required field."})
        raise QueryError({f"{path}.type": f"Unknown moment type {kind!r}."})

    def _which(self, moment: datetime, which: Any, path: str) -> datetime:
        """The start or end of `moment`'s day, where days begin at midnight in the offset."""
        if which == "start":
            return _midnight(moment + self.tz) - self.tz
        if which == "end":
            return _midnight(moment + self.tz) - self.tz + timedelta(days=1)
        raise QueryError({path: "Must be 'start' or 'end'."})

    def _offset(self, moment: JSON, path: str) -> datetime:
        direction = moment.get("direction")
        if direction not in ("past", "future"):
            raise QueryError({f"{path}.direction": "Must be 'past' or 'future'."})
        base = self.moment(moment.get("moment"), f"{path}.moment")
        offset = moment.get("offset")
        if not isinstance(offset, dict):
            raise QueryError({f"{path}.offset": "Missing data for required field."})
        sign = -1 if direction == "past" else 1
        result = base
        for unit, amount in offset.items():
            if unit not in OFFSET_UNITS:
                raise QueryError({f"{path}.offset.{unit}": "Unknown unit."})
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise QueryError({f"{path}.offset.{unit}": "Must be a non-negative integer."})
            if unit in ("years", "months"):
                result = _add_months(result, sign * amount * (12 if unit == "years" else 1))
            else:
                result += sign * timedelta(**{unit: amount})
        which_day_end = moment.get("which_day_end")
        if which_day_end is None:
            return result
        if which_day_end not in ("start", "end"):
            raise QueryError({f"{path}.which_day_end": "Must be 'start' or 'end'."})
        if any(offset.get(unit) for unit in ("hours", "minutes", "seconds")):
            # Our reading, not documented: Close's UI sends day ends with whole days, and the
            # public scripts that send hours or minutes with `which_day_end` read them as
            # "the last N hours", so a span with a time part is not rounded to a day end.
            return result
        return self._which(result, which_day_end, f"{path}.which_day_end")
