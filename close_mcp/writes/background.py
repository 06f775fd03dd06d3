"""Confirmed writes whose reading outlasts a client's patience, carried out as server jobs.

Before a confirmed bulk action is sent, every lead it touches is read once (the binding
check, and the snapshot or backup), at Close's pace: about 20 requests a second, 200 leads a
request. Past `LONG_READ_S` of reading (about 180,000 leads) the call would outlast the 60 s
many clients wait for one tool call (the TypeScript SDK's default; Claude Desktop ends calls
at about that), so the preview says how long it takes and the confirmed call, once the token
is spent and the person agreed, answers `accepted` at once with a job id and carries the
rest out in this server process:

- the very steps the call would have run (`Pipeline`: one read of the leads, the digest
  checked once the last page is in, a difference discarding what was written and refusing;
  then the POST, once, audited), so nothing is sent before the snapshot or backup is whole;
- its state in the state store under `serverjob:<id>` (`reading` with its progress,
  `sending`, then `sent` with Close's job id, or `refused` / `failed` with why), so
  `wait_for_bulk_job` and `get_bulk_job` on any replica sharing the store follow it, then
  follow Close's job;
- a state that stops moving (the process died) reads as stopped: before `sending`, nothing
  was sent; from `sending` on, whether Close got the request is unknown (look at its jobs);
- `pause_bulk_job` on it before it is sent stops it for good: the job and the pause each try
  to `decide` (atomically in the store, once for all replicas) between "send" and "stop", so
  either the pause wins and nothing is ever sent (what the read wrote is discarded when it
  ends), or the job is being sent and the pause then applies to Close's job.

The id has the form of the kind's Close ids (`bulkdelete_mcp<hex>`) so the job tools take it
as they are (their schemas, which every client reads on every turn, stay as they are); Close
never makes an id with that prefix, and the store is asked first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

from close_mcp.clock import Clock
from close_mcp.close.jobs import JobKind, JobSummary, job_kind
from close_mcp.close.lead_walk import read_cost
from close_mcp.store import StateStore

log = logging.getLogger(__name__)

RATE: Final = 20.0  # Close's requests a second, about
LONG_READ_S: Final = 45.0  # reading longer than this runs as a job (a client waits ~60 s)
STALE_S: Final = 120.0  # a job whose state has not moved for this long has stopped
STATE_TTL_S: Final = 7 * 24 * 3600.0
MARK: Final = "mcp"  # after the kind's prefix: bulkdelete_mcp<hex>
_PREFIX: Final[dict[JobKind, str]] = {
    "edit": "bulkedit_",
    "email": "bulkemail_",
    "sequence_subscription": "bulkseqsub_",
    "delete": "bulkdelete_",
}


def read_seconds(matched: int) -> float:
    """How long reading `matched` leads once takes at Close's pace."""
    return read_cost(matched) / RATE


def runs_as_job(matched: int) -> bool:
    return read_seconds(matched) > LONG_READ_S


def new_id(kind: JobKind) -> str:
    return f"{_PREFIX[kind]}{MARK}{secrets.token_hex(12)}"


def is_server_job(job_id: str) -> bool:
    return any(job_id.startswith(prefix + MARK) for prefix in _PREFIX.values())


STOPPED: Final = (
    "stopped by pause_bulk_job before anything was sent; call the tool again for a fresh preview"
)


def _key(job_id: str) -> str:
    return f"serverjob:{job_id}"


async def decide(store: StateStore, job_id: str, decision: str) -> str:
    """Decide, once for every replica, whether the job is sent or stopped: the first caller's
    `decision` ("send" or "stop") holds; answers the one that holds."""
    key = f"serverjob-decided:{job_id}"
    if await store.add(key, decision, ttl_s=STATE_TTL_S):
        return decision
    return await store.get(key) or decision


class ServerJobs:
    """The jobs this process carries out; their state is in the store."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, server_job_id: str, state: str, **fields: Any) -> None:
        """The job's state now, for whoever follows it (any replica sharing the store);
        `job_id` among `fields` is Close's job, once sent."""
        text = json.dumps({"state": state, "at": self.clock.time(), **fields})
        await self.store.put(_key(server_job_id), text, ttl_s=STATE_TTL_S)

    async def start(self, job_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Record the job as reading and run `work` in the background of this process."""
        await self.record(job_id, "reading", read=0, total=None)

        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:  # `work` records its own outcome; this is a bug's last word
                log.exception("server job %s failed", job_id)
                with contextlib.suppress(Exception):
                    await self.record(job_id, "failed", reason="an internal error; see the log")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop the jobs still running (a read stops before anything is sent)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def server_job(store: StateStore, clock: Clock, job_id: str) -> dict[str, Any] | None:
    """The state of a server job (None: `job_id` is not one), a stopped one said so."""
    if not is_server_job(job_id):
        return None
    text = await store.get(_key(job_id))
    if text is None:
        return {"state": "failed", "reason": "no such job (or it is older than a week)"}
    state: dict[str, Any] = json.loads(text)
    if state.get("state") in ("reading", "sending") and clock.time() - state["at"] > STALE_S:
        if state["state"] == "reading":
            why = "the server carrying it out stopped while reading the leads; nothing was sent"
        else:
            why = (
                "the server carrying it out stopped while sending: whether Close got the "
                "request is unknown; look at list_bulk_jobs before trying again"
            )
        return {"state": "failed", "reason": why}
    return state


def summary(job_id: str, state: dict[str, Any]) -> JobSummary:
    """The job as the job tools show it before Close has one: `loading` while the leads are
    read and sent, `error` (with `details.reason`) if it was refused or failed."""
    phase = state.get("state")
    details: dict[str, Any] = {"server_job": phase}
    if phase in ("refused", "failed"):
        details["reason"] = state.get("reason")
        status = "error"
    else:
        status = "loading"
        if state.get("message"):
            details["progress"] = state["message"]
    return JobSummary(
        id=job_id,
        kind=job_kind(job_id),
        status=status,
        n_objects=state.get("total"),
        n_objects_processed=state.get("read"),
        details=details,
    )
