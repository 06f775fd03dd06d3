"""A write fully worked out before any decision to send it: what a write tool builds.

A tool builds a `WriteRequest` (the exact path and body it would send, how many leads it
touches, a sample) and hands it to the pipeline, which decides what happens to it. It is
frozen: what is added later (a safeguard's `Guard`, a tool's rendering, the pipeline's note)
makes a copy (`dataclasses.replace`), so the request a token was minted for is the one sent.
A `Safeguard` (safety/ implements it) is what is saved before a write Close cannot undo.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from close_mcp.close.jobs import JobKind
from close_mcp.selection.sample import LeadSample
from close_mcp.writes.progress import Progress
from close_mcp.writes.reconcile import RecentLookup
from close_mcp.writes.results import PlanAnswer, Preview
from close_mcp.writes.sender import Method, Sender


class Safeguard(Protocol):
    """What is saved before a write Close cannot undo (safety/ implements it).

    `take` runs once the token is checked, right before it is spent and the request sent, and
    returns the file it wrote
    (None: nothing to save, and no lead was read), reporting its pages to `progress` and
    handing each page to `observe` as it arrives (the binding check folds the same pages:
    one read of the leads); `discard` removes what `take` wrote when the check then refuses;
    `attach` names that file after the job Close created."""

    what: str  # "snapshot" or "backup", for messages

    async def take(
        self,
        request: WriteRequest,
        progress: Progress | None = None,
        observe: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> str | None: ...

    async def discard(self, saved: str) -> None: ...

    async def attach(self, saved: str, job_id: str) -> str: ...


@dataclass(frozen=True)
class WriteRequest:
    """A write fully worked out, before any decision to send it; never edited once built."""

    tool: str
    action: str  # the CLOSE_MCP_CONFIRM name: edit, email, sequences, send, delete
    path: str
    body: dict[str, Any]
    matched: int
    summary: str  # one line for a person: "Delete 42 leads"
    job_kind: JobKind | None = None
    # What the job will show of this request (`job_echo`), for finding it again after an
    # ambiguous failure; None: the body's fields the kind echoes.
    echo: dict[str, Any] | None = None
    # Why a write that touches nothing is refused (None: it is not; one email touches one).
    when_empty: str | None = "the selection matches no leads"
    recent: RecentLookup | None = None  # defaults to the recent jobs of job_kind
    selects_everything: bool = False
    s_query: dict[str, Any] | None = None
    results_limit: int | None = None
    sort: list[dict[str, Any]] | None = None
    sample: Sequence[LeadSample] = ()  # kept as a tuple, whatever sequence it is built from
    rendering: dict[str, Any] | None = None
    notes: Sequence[str] = ()  # kept as a tuple too
    always_confirm: bool = False  # e.g. no snapshot possible: confirmed whatever the policy
    safeguard: Safeguard | None = None
    # A write that is several requests (a revert plan) sends each through the `Sender`;
    # `body` describes all of them, so the token binds the whole plan; each request is a
    # step of the call's progress.
    send: Callable[[Sender, Progress | None], Awaitable[PlanAnswer]] | None = None
    # Where the call's long steps report; set when preparing the request already reported
    # some (a revert reads its snapshot back), so the values keep growing.
    progress: Progress | None = None
    # PUT changes an object that exists (resuming a job): nothing is created, so nothing is
    # looked for after an ambiguous failure and the object is not attributed to this write.
    method: Method = "POST"
    # The change already holds (an email that is already a draft): the call is answered
    # `refused` with this reason, whatever the token, and nothing is asked or sent, so an
    # idempotent tool's repeat is an answer, not an error.
    already: str | None = None
    # What a person typing the count confirms (action `delete`): "deleted", or "restored".
    counted: str = "deleted"

    def __post_init__(self) -> None:
        """A list handed in stays its caller's: the request holds tuples nothing can append to."""
        object.__setattr__(self, "sample", tuple(self.sample))
        object.__setattr__(self, "notes", tuple(self.notes))

    def preview(self) -> Preview:
        return Preview(
            path="/" + self.path,
            request=self.body,
            matched=self.matched,
            sample=list(self.sample),
            rendering=self.rendering,
            notes=list(self.notes),
        )

    def sent(self) -> Preview:
        """What a submitted result shows: the request and its count, not the preview again
        (the sample and the rendering were shown before the person agreed)."""
        return Preview(
            path="/" + self.path, request=self.body, matched=self.matched, notes=list(self.notes)
        )

    def lookup(self) -> RecentLookup | None:
        """Where this write is found again after an ambiguous failure (None: a PUT creates
        nothing to look for)."""
        if self.method != "POST":
            return None
        if self.recent is not None or self.job_kind is None:
            return self.recent
        return RecentLookup.for_job(self.job_kind, self.body, self.echo)
