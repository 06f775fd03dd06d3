"""Timestamps as Close answers them, read one way everywhere.

Close answers some timestamps with an offset (`2013-02-01T00:54:51.274000+00:00`, its lead and
bulk-job examples) and some without (`2015-06-26T02:01:43.059265`, its email activity
example). A time without an offset is Close's UTC: read as the machine's local time instead,
an email made a moment ago looks nine hours old in Tokyo, and the look-up after an ambiguous
send misses it. Every reader of a Close timestamp goes through `close_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def close_time(raw: object) -> datetime | None:
    """A Close timestamp as an aware UTC datetime (no offset: UTC); None if it is not one."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def utc_text(raw: str) -> str:
    """A Close timestamp in the form a `fixed_utc` moment takes (always with its offset);
    `raw` itself if it is not a timestamp."""
    moment = close_time(raw)
    return raw if moment is None else moment.isoformat()
