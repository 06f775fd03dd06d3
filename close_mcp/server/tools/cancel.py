"""`cancel_email` (toolset `send`): an outbox or scheduled email set back to draft.

Close's email reference: "Scheduled emails, or emails in outbox that weren't sent yet can be
canceled by setting the status back to `draft`." That is `PUT activity/email/{id}/
{"status": "draft"}`, the undo of `send_email` inside its send delay (`send_in`, up to 59
seconds) or before `date_scheduled`. The email is read first: one already sent or a logged
email (`sent`, `inbox`, `error`) is refused with the reason, nothing written; a draft (a
repeat of a cancel) is answered `refused`, "already a draft", without a write or an error,
as the tool's idempotent annotation promises. The PUT
goes through the write pipeline like every write (preview, confirmation under the `send`
action, audit); if Close sends the email between the read and the PUT, Close's refusal
becomes the same clear tool error.
"""

from dataclasses import replace
from typing import Annotated, Any, Final

from pydantic import BaseModel, Field

from close_mcp.close.activities import email_activity
from close_mcp.close.client import CloseClient
from close_mcp.errors import ArgumentError, NotFound
from close_mcp.selection.sample import LeadSample
from close_mcp.server.tools.declare import Invocation, WriteTool, writes
from close_mcp.writes.request import WriteRequest

CANCELLABLE: Final = frozenset({"outbox", "scheduled"})
EMAIL_FIELDS: Final = (
    "id,lead_id,contact_id,status,to,cc,bcc,subject,sender,body_text,date_scheduled,date_sent"
)
LEAD_FIELDS: Final = "id,display_name,status_label"
BODY_CLIP: Final = 500
# Why each status that is not cancellable cannot be.
NOT_CANCELLABLE: Final = {
    "sent": "it was already sent; Close cannot take back a sent email",
    "inbox": "it is a received email (inbox), which sends nothing",
    "error": "its sending failed (status error); it is not queued to go out",
}

ActivityIdArg = Annotated[
    str,
    Field(
        pattern=r"^acti_[A-Za-z0-9]+$",
        max_length=100,
    ),
]


async def _lead_sample(client: CloseClient, lead_id: str) -> list[LeadSample]:
    """The email's lead, named for the person confirming; its id alone if Close has it no more."""
    if not lead_id:
        return []
    try:
        raw = await client.get(f"lead/{lead_id}/", {"_fields": LEAD_FIELDS})
    except NotFound:
        raw = None
    raw = raw if isinstance(raw, dict) else {}
    return [
        LeadSample(
            id=lead_id, display_name=raw.get("display_name"), status_label=raw.get("status_label")
        )
    ]


def _check_cancellable(email: dict[str, Any]) -> None:
    """Refused, with the reason, when Close would not cancel this email (a draft is
    answered without a write: what a cancel makes already holds)."""
    status = str(email.get("status"))
    if status not in CANCELLABLE | {"draft"}:
        reason = NOT_CANCELLABLE.get(status, f"its status is {status}, not outbox or scheduled")
        raise ArgumentError("activity_id", f"cannot cancel {email['id']}: {reason}")


def _cancel_request(email: dict[str, Any], sample: list[LeadSample]) -> WriteRequest:
    """Setting a cancellable `email` back to draft, as a write."""
    activity_id = str(email["id"])
    status = str(email.get("status"))
    to = [str(a) for a in email.get("to") or []]
    who = ", ".join(to) or "no recipient"
    subject = email.get("subject")
    about = f" (subject {subject!r})" if subject else ""
    when = (
        f", scheduled for {email.get('date_scheduled')}"
        if status == "scheduled"
        else ", in the outbox"
    )
    body_text = email.get("body_text")
    if isinstance(body_text, str) and len(body_text) > BODY_CLIP:
        body_text = body_text[:BODY_CLIP] + f"… ({len(body_text)} characters in all)"
    return WriteRequest(
        tool="cancel_email",
        action="send",
        path=f"activity/email/{activity_id}/",
        body={"status": "draft"},
        matched=1,
        summary=f"Cancel the email to {who}{about}{when}: set it back to draft",
        method="PUT",
        when_empty=None,
        sample=sample,
        rendering={
            "status": status,
            "to": to,
            "cc": list(email.get("cc") or []),
            "bcc": list(email.get("bcc") or []),
            "sender": email.get("sender"),
            "subject": subject,
            "body": body_text,
            "date_scheduled": email.get("date_scheduled"),
        },
        notes=[
            "The email stays in Close as a draft (nothing is deleted); send it later with "
            "send_email, or edit it in Close.",
            "An outbox email goes once its send delay (send_in) has passed: if Close has sent "
            "it by the time this is confirmed, the cancel is refused.",
        ],
    )


class CancelArguments(BaseModel):
    activity_id: ActivityIdArg


async def prepare_cancel(invocation: Invocation, args: CancelArguments) -> WriteRequest:
    client = invocation.call.client
    email = await email_activity(client, args.activity_id, EMAIL_FIELDS, field="activity_id")
    _check_cancellable(email)
    sample = await _lead_sample(client, str(email.get("lead_id") or ""))
    request = _cancel_request(email, sample)
    if email.get("status") == "draft":  # cancelled already, or never queued: idempotent
        already = f"{args.activity_id} is already a draft: there is nothing to cancel"
        return replace(request, matched=0, already=already)
    return request


TOOLS = (
    WriteTool(
        name="cancel_email",
        toolset="send",
        title="Cancel an unsent email",
        description="Undo send_email: an outbox or scheduled email back to draft.",
        annotations=writes(destructive=False, idempotent=True),
        arguments=CancelArguments,
        prepare=prepare_cancel,
        refused=lambda args: f"cannot cancel {args.activity_id}",
    ),
)
