"""Close's `X-TZ-Offset` header: the time zone Close reads date filters in.

Close takes a filter's local dates (`fixed_local_date`, "start of the day" in relative dates)
in the offset this header gives, in hours (`-4` for EDT, `-2.5` for NDT; Close's "Timezone
Offsets" page); without it, in UTC. The client sends it on every request, from an IANA zone
(`CLOSE_MCP_TIMEZONE`) or this machine's zone, taken at the moment of the request, so a
date filter sent in July means a New York day in EDT and one sent in January in EST.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from typing import Final

TZ_OFFSET_HEADER: Final = "X-TZ-Offset"


def local_date(zone: tzinfo | None, at: float) -> date:
    """The calendar day in `zone` (None: this machine's zone) at the instant `at`."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return (moment.astimezone(zone) if zone is not None else moment.astimezone()).date()


def utc_offset_minutes(zone: tzinfo | None, at: float) -> int:
    """Minutes `zone` (None: this machine's local zone) is ahead of UTC at the instant `at`."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    offset = local.utcoffset()
    return 0 if offset is None else round(offset.total_seconds() / 60)


def tz_offset_header(zone: tzinfo | None, at: float) -> str:
    """The header's value at the instant `at`: hours, `-4`, `5.5`, `5.75` (Nepal), `0`."""
    hours = utc_offset_minutes(zone, at) / 60
    text = f"{hours:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def zone_name(zone: tzinfo | None) -> str:
    """How the zone is named to a person: its IANA key, or "this machine's time zone"."""
    if zone is None:
        return "this machine's time zone"
    return str(getattr(zone, "key", None) or zone)
