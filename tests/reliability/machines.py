"""What the two confirmation state machines share (test_confirmation_machine for the bulk
kinds and send, test_record_confirmation_machine for the issue-28 write tools): the person's
answers, forged tokens, one tool call through the portal, and running a machine class."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from mcp import types

from tests.harness import Harness, Mode
from tests.reliability.support import check_outcome

ANSWERS: Final = (
    "accept_right",
    "accept_right",
    "accept_right",
    "accept_wrong",
    "decline",
    "cancel",
)
DIGEST_REFUSAL: Final = "the confirmation token was issued for different arguments"

Machine = TypeVar("Machine", bound=RuleBasedStateMachine)


def person_answers(answer: str, message: str) -> types.ElicitResult:
    """The person's answer to the server's question: `answer` is one of ANSWERS (a typed
    count is the number the question shows, or one more when the answer is wrong)."""
    if answer == "decline":
        return types.ElicitResult(action="decline")
    if answer == "cancel":
        return types.ElicitResult(action="cancel")
    right = answer == "accept_right"
    if "type the number" in message:
        shown = int(re.findall(r"\((\d+)\)\.$", message)[0])
        return types.ElicitResult(action="accept", content={"count": shown if right else shown + 1})
    return types.ElicitResult(action="accept", content={"approve": right})


def forge(token: str, how: int) -> str:
    """A token the server never minted, four ways (`how` 0 to 3)."""
    payload, dot, mac = token.partition(".")
    if not dot:  # a placeholder from a preview that minted nothing
        return token + ".forged"
    if how == 0:  # another MAC
        return f"{payload}.{mac[:-3]}{'AAA' if not mac.endswith('AAA') else 'BBB'}"
    if how == 1:  # the payload changed to a bigger count, the MAC kept
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        data["m"] = int(data.get("m", 0)) + 1000
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        return f"{raw}.{mac}"
    if how == 2:  # no MAC at all
        return payload
    return "eyJ0IjoiY3JlYXRlX2J1bGtfZGVsZXRlIn0.forged"


def call(
    portal: BlockingPortal, h: Harness, tool: str, args: dict[str, Any]
) -> dict[str, Any] | None:
    """One tool call through the portal: its structured result, None for a tool error (a
    crash fails the run: `check_outcome`)."""
    result: types.CallToolResult = portal.call(h.call_raw, tool, args)
    if check_outcome(tool, result) == "error":
        return None
    content: dict[str, Any] | None = result.structured_content
    return content


def run_machine(
    base: type[Machine], mode: Mode, asks: bool, *, examples: int, steps: int, shrink: bool = True
) -> None:
    """Run `base` (whose class attributes `portal`, `mode` and `asks` each run reads) with a
    portal to one event loop; derandomized, no example database, no deadline."""
    with start_blocking_portal(backend="asyncio") as portal:
        machine = type("Machine", (base,), {"portal": portal, "mode": mode, "asks": asks})
        options: dict[str, Any] = {}
        if not shrink:
            options["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                **options,
            ),
        )
