"""The sandbox's answers, for every endpoint close-mcp uses, against the response schemas of
Close's published OpenAPI description (tests/reference/close-openapi.yml), so the sandbox
cannot drift from Close's documented shapes; and the requests made of it (query parameters
and JSON bodies) against the same description's parameters and request bodies.

Formats are asserted, `date-time` and `date` included (jsonschema checks neither `date-time`
without an extra package, so the checkers are written here). A request's `date-time` must be
RFC 3339, with its offset; an answer's may lack the offset, because Close's own email
activity example answers `"date_created": "2015-06-26T02:01:43.059265"` (UTC).

The schemas are OpenAPI 3.1, that is JSON Schema 2020-12: jsonschema validates them, and the
whole document is one `referencing` resource, so every `$ref` (`#/components/schemas/...`)
resolves inside it. Where the OpenAPI file and Close's own documentation pages (the seeds in
the project's shared folder) disagree, the pages win: `SEED_OVERRIDES` patches the schema,
each with the reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from close_mcp.clock import FakeClock
from close_mcp.sandbox import Sandbox
from tests.queries import lead_ids_query

pytestmark = pytest.mark.anyio

SPEC_FILE = Path(__file__).resolve().parents[1] / "reference" / "close-openapi.yml"
URI = "urn:close-openapi"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SENDER = "sandra@sandbox.example"


def _email_sender_may_carry_a_name(schemas: dict[str, Any]) -> None:
    """The email page: `"sender": "\\"John Smith\\" <emailaddress@example.com>"` is accepted,
    so the OpenAPI's `format: email` on an email's `sender` is too narrow (it is not asserted
    by jsonschema anyway, but a stricter format checker would reject the documented form)."""
    for name in ("EmailActivity", "CreateEmailActivity", "UpdateEmailActivity"):
        sender = schemas[name]["properties"].get("sender")
        if isinstance(sender, dict):
            sender.pop("format", None)


def _followup_sequence_delay_at_least_a_day(schemas: dict[str, Any]) -> None:
    """The email page: `followup_sequence_delay` "integer or null, >=86400"; the OpenAPI file
    has no minimum. An answer never holds less than what was accepted, so the minimum holds
    there too."""
    delay = schemas["EmailActivity"]["properties"]["followup_sequence_delay"]
    delay["minimum"] = 86_400


def _task_date_is_a_date_or_a_date_time(schemas: dict[str, Any]) -> None:
    """The task update page: `date` is "either a date or a date-time". The file says
    `oneOf` date / date-time, which no string can satisfy when formats are annotations only
    (both branches match), so it is read as `anyOf`."""
    for name in ("UpdateNotificationDate", "UpdateNotificationDueDate"):
        schemas[name]["anyOf"] = schemas[name].pop("oneOf")


SEED_OVERRIDES: list[Callable[[dict[str, Any]], None]] = [
    _email_sender_may_carry_a_name,
    _followup_sequence_delay_at_least_a_day,
    _task_date_is_a_date_or_a_date_time,
]


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.load(SPEC_FILE.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 (a safe loader)
    patched = copy.deepcopy(spec)
    for override in SEED_OVERRIDES:
        override(patched["components"]["schemas"])
    return patched


SPEC = _spec()
REGISTRY: Registry[Any] = Registry().with_resource(URI, DRAFT202012.create_resource(SPEC))

# The endpoints close-mcp calls (README "Layout": close/, safety/, server/tools/, cli/check),
# as the OpenAPI file names them.
USED = [
    ("get", "/me/"),
    ("get", "/status/lead/"),
    ("get", "/custom_field/lead/"),
    ("get", "/custom_field/lead/{id}/"),
    ("get", "/custom_field_schema/{object_type}/"),
    ("get", "/email_template/"),
    ("get", "/email_template/{id}/"),
    ("get", "/email_template/{id}/render/"),
    ("get", "/sequence/"),
    ("get", "/sequence/{id}/"),
    ("get", "/connected_account/"),
    ("get", "/connected_account/{id}/"),
    ("get", "/user/"),
    ("get", "/user/{id}/"),
    ("get", "/saved_search/"),
    ("get", "/saved_search/{id}/"),
    ("get", "/lead/{id}/"),
    ("post", "/lead/"),
    ("put", "/lead/{id}/"),
    *[
        (method, path.format(kind=kind))
        for kind in ("edit", "email", "sequence_subscription", "delete")
        for method, path in (
            ("get", "/bulk_action/{kind}/"),
            ("post", "/bulk_action/{kind}/"),
            ("get", "/bulk_action/{kind}/{{id}}/"),
        )
    ],
    ("get", "/activity/email/"),
    ("post", "/activity/email/"),
    ("get", "/activity/email/{id}/"),
    ("put", "/activity/email/{id}/"),
]
# Used by close-mcp but not described by the OpenAPI file, so not validated here: the search
# (`POST /data/search/`, documented only on the advanced-filtering page) and pausing or
# resuming a job (`PUT /bulk_action/{kind}/{id}/`, on the bulk-actions page). The check below
# fails when a later copy of the file starts describing one of them.
NOT_IN_OPENAPI = [
    ("post", "/data/search/"),
    *[
        ("put", f"/bulk_action/{kind}/{{id}}/")
        for kind in ("edit", "email", "sequence_subscription", "delete")
    ],
]
# Answers the OpenAPI file leaves undescribed ("Empty response body": any object passes), so
# their validation here is vacuous: the organization's lists (statuses, custom fields, templates,
# sequences, connected accounts, users), me/ and the render. What close-mcp reads of them is
# checked by tests/test_check.py (`close-mcp check` with the catalog's models) instead.
UNDESCRIBED = [
    ("get", "/me/"),
    ("get", "/status/lead/"),
    ("get", "/custom_field/lead/"),
    ("get", "/custom_field/lead/{id}/"),
    ("get", "/custom_field_schema/{object_type}/"),
    ("get", "/email_template/"),
    ("get", "/email_template/{id}/"),
    ("get", "/email_template/{id}/render/"),
    ("get", "/sequence/"),
    ("get", "/sequence/{id}/"),
    ("get", "/connected_account/"),
    ("get", "/connected_account/{id}/"),
    ("get", "/user/"),
    ("get", "/user/{id}/"),
]


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_ISO_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")


def _real(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _formats(*, naive_ok: bool) -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time")
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        shaped = _RFC3339.match(value) or (naive_ok and _ISO_NAIVE.match(value))
        return bool(shaped) and _real(value)

    @checker.checks("date")
    def a_date(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None

    return checker


ANSWER_FORMATS = _formats(naive_ok=True)  # Close's examples answer naive UTC timestamps
REQUEST_FORMATS = _formats(naive_ok=False)


def _schema_name(method: str, path: str) -> str:
    content = SPEC["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    return str(content["schema"]["$ref"].rsplit("/", 1)[1])


def response_validator(method: str, path: str) -> Draft202012Validator:
    schema = SPEC["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    ref = schema["schema"]["$ref"]
    return Draft202012Validator(
        {"$ref": URI + ref}, registry=REGISTRY, format_checker=ANSWER_FORMATS
    )


def _anchored(schema: Any) -> Any:
    """An inline schema of the document, its `#/...` references made absolute."""
    return json.loads(json.dumps(schema).replace('"$ref": "#/', f'"$ref": "{URI}#/'))


def request_problems(method: str, path: str, params: dict[str, Any] | None, body: Any) -> list[str]:
    """What in a request differs from the operation's parameters and request body: a query
    parameter it does not list, a value or a body its schemas (formats included) refuse."""
    operation = SPEC["paths"][path][method]
    listed = {
        p["name"]: p.get("schema", {})
        for p in operation.get("parameters", [])
        if p.get("in") == "query"
    }
    found: list[str] = []
    for name, value in (params or {}).items():
        if name not in listed:
            found.append(f"query {name}: not a parameter of {method.upper()} {path}")
            continue
        schema = _anchored(listed[name])
        described = json.dumps(schema)
        numeric = isinstance(value, str) and value.isdigit() and "integer" in described
        listed_form = isinstance(value, str) and '"array"' in described  # a,b,c
        checked: Any = int(value) if numeric else value.split(",") if listed_form else value
        validator = Draft202012Validator(schema, registry=REGISTRY, format_checker=REQUEST_FORMATS)
        found += [f"query {name}: {e.message[:200]}" for e in validator.iter_errors(checked)]
    described = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body is not None and "schema" in described:
        validator = Draft202012Validator(
            _anchored(described["schema"]), registry=REGISTRY, format_checker=REQUEST_FORMATS
        )
        found += [
            f"body {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in validator.iter_errors(body)
        ]
    return found


def problems(method: str, path: str, answer: Any) -> list[str]:
    errors = sorted(
        response_validator(method, path).iter_errors(answer), key=lambda e: list(e.absolute_path)
    )
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in errors]


def test_every_used_endpoint_is_described_and_the_others_are_not() -> None:
    for method, path in USED:
        assert method in SPEC["paths"].get(path, {}), (method, path)
        response_validator(method, path)  # its schema and every $ref in it resolve
    for method, path in NOT_IN_OPENAPI:
        assert method not in SPEC["paths"].get(path, {}), (method, path)
    schemas = SPEC["components"]["schemas"]
    undescribed = [
        (method, path)
        for method, path in USED
        if schemas[_schema_name(method, path)].get("properties") == {}
    ]
    assert undescribed == UNDESCRIBED


def test_the_seed_overrides_change_the_schemas() -> None:
    raw = yaml.load(SPEC_FILE.read_text(encoding="utf-8"), Loader=Loader)["components"]  # noqa: S506
    ours = SPEC["components"]["schemas"]
    assert raw["schemas"]["EmailActivity"] != ours["EmailActivity"]
    assert raw["schemas"]["CreateEmailActivity"] != ours["CreateEmailActivity"]
    assert ours["EmailActivity"]["properties"]["followup_sequence_delay"]["minimum"] == 86_400


class Recorder:
    """Calls the sandbox and keeps each answer under the OpenAPI path it answers for."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.answers: dict[tuple[str, str], list[Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None, Any]] = []

    async def call(self, method: str, url: str, spec_path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method.upper(), url, **kwargs)
        assert response.status_code == 200, (method, url, response.text)
        answer = response.json()
        self.answers.setdefault((method, spec_path), []).append(answer)
        self.requests.append((method, spec_path, kwargs.get("params"), kwargs.get("json")))
        return answer


async def record_every_used_endpoint(sb: Sandbox, http: httpx.AsyncClient) -> Recorder:
    """Each endpoint close-mcp uses, called as close-mcp calls it, jobs in several states."""
    rec = Recorder(http)
    store = sb.store
    lead = next(lead for lead in store.leads.values() if lead.contacts)
    template = next(t for t in store.templates.values() if not t.is_archived)
    account = next(iter(store.email_accounts.values()))
    sequence = next(iter(store.sequences.values()))
    status = next(iter(store.statuses))
    field = next(iter(store.custom_fields.values()))
    await rec.call("get", "me/", "/me/")
    await rec.call("get", "status/lead/", "/status/lead/")
    await rec.call("get", "custom_field/lead/", "/custom_field/lead/")
    await rec.call("get", f"custom_field/lead/{field.id}/", "/custom_field/lead/{id}/")
    await rec.call("get", "custom_field_schema/lead/", "/custom_field_schema/{object_type}/")
    await rec.call("get", "email_template/", "/email_template/")
    await rec.call("get", f"email_template/{template.id}/", "/email_template/{id}/")
    params = {"lead_id": lead.id, "contact_id": lead.contacts[0].id}
    await rec.call(
        "get", f"email_template/{template.id}/render/", "/email_template/{id}/render/",
        params=params,
    )  # fmt: skip
    await rec.call("get", "sequence/", "/sequence/")
    await rec.call("get", f"sequence/{sequence.id}/", "/sequence/{id}/")
    await rec.call("get", "connected_account/", "/connected_account/")
    await rec.call("get", f"connected_account/{account.id}/", "/connected_account/{id}/")
    await rec.call("get", "user/", "/user/")
    await rec.call("get", f"user/{store.me.id}/", "/user/{id}/")
    views = await rec.call("get", "saved_search/", "/saved_search/")
    await rec.call("get", f"saved_search/{views['data'][0]['id']}/", "/saved_search/{id}/")
    await rec.call("get", f"lead/{lead.id}/", "/lead/{id}/")
    restored = {
        "name": "Restored Inc.",
        "status_id": status,
        "contacts": [{"name": "Ann", "emails": [{"email": "ann@example.com", "type": "office"}]}],
        f"custom.{field.id}": None,
    }
    await rec.call("post", "lead/", "/lead/", json=restored)
    await rec.call("put", f"lead/{lead.id}/", "/lead/{id}/", json={f"custom.{field.id}": None})

    one_lead = lead_ids_query([lead.id])
    bodies = {
        "edit": {"s_query": one_lead, "type": "set_lead_status", "lead_status_id": status},
        "email": {
            "s_query": one_lead,
            "template_id": template.id,
            "contact_preference": "lead",
        },
        "sequence_subscription": {
            "s_query": one_lead,
            "action_type": "subscribe",
            "sequence_id": sequence.id,
            "sender_account_id": account.id,
            "sender_name": "Sandra Box",
            "sender_email": SENDER,
            "contact_preference": "lead",
        },
        "delete": {"s_query": one_lead},
    }
    jobs = {}
    for kind, body in bodies.items():
        path = f"/bulk_action/{kind}/"
        jobs[kind] = (await rec.call("post", f"bulk_action/{kind}/", path, json=body))["id"]
    for step in (0.0, 0.7, 2.0, 60.0):  # created, loading, processing or done, done
        sb.advance(step)
        for kind, job_id in jobs.items():
            path = f"/bulk_action/{kind}/"
            await rec.call("get", f"bulk_action/{kind}/{job_id}/", path + "{id}/")
            await rec.call("get", f"bulk_action/{kind}/", path)

    other = next(x for x in store.leads.values() if x.contacts and x.id != lead.id)
    draft = {"lead_id": other.id, "status": "draft", "body_text": "x", "subject": "Hi"}
    first = await rec.call("post", "activity/email/", "/activity/email/", json=draft)
    scheduled = {
        **draft,
        "status": "scheduled",
        "sender": SENDER,
        "to": ["ann@example.com"],
        "date_scheduled": "2026-01-05T09:00:00+00:00",
        "in_reply_to_id": first["id"],
        "followup_sequence_id": sequence.id,
        "followup_sequence_delay": 86_400,
    }
    later = await rec.call("post", "activity/email/", "/activity/email/", json=scheduled)
    await rec.call("get", f"activity/email/{later['id']}/", "/activity/email/{id}/")
    cancel = {"status": "draft"}
    await rec.call("put", f"activity/email/{later['id']}/", "/activity/email/{id}/", json=cancel)
    await rec.call("get", "activity/email/", "/activity/email/", params={"lead_id": other.id})
    since = {"lead_id": other.id, "date_created__gte": "2026-01-01T00:00:00+00:00"}
    await rec.call("get", "activity/email/", "/activity/email/", params=since)  # the look-up
    return rec


async def test_the_sandbox_answers_as_the_openapi_description_says() -> None:
    sb = Sandbox(n_leads=30, clock=FakeClock())
    async with httpx.AsyncClient(
        transport=sb.transport(), base_url="http://sandbox/api/v1/", auth=(sb.api_key, "")
    ) as http:
        rec = await record_every_used_endpoint(sb, http)
    assert sorted(rec.answers) == sorted(USED)
    failures = {
        f"{method.upper()} {path}": found
        for (method, path), answers in rec.answers.items()
        for found in [sorted({p for answer in answers for p in problems(method, path, answer)})]
        if found
    }
    assert failures == {}
    refused = {
        f"{method.upper()} {path}": found
        for method, path, params, body in rec.requests
        for found in [request_problems(method, path, params, body)]
        if found
    }
    assert refused == {}


def test_a_request_off_the_description_is_caught() -> None:
    """The request validation can fail: a naive date-time, an unknown parameter, a bad body."""
    naive = {"date_created__gte": "2026-01-01T00:00:00"}
    assert request_problems("get", "/activity/email/", naive, None) != []
    assert request_problems("get", "/activity/email/", {"since": "x"}, None) == [
        "query since: not a parameter of GET /activity/email/"
    ]
    late = {"lead_id": "lead_1", "status": "outbox", "followup_date": "2026-01-05T09:00:00"}
    assert any(
        p.startswith("body followup_date")
        for p in request_problems("post", "/activity/email/", None, late)
    )
    assert problems("get", "/activity/email/{id}/", {"date_created": "2015-06-26 02:01"}) != []


def test_a_drifted_answer_is_caught() -> None:
    """The validation can fail: a view without its name, a job with a string count."""
    view = {"id": "save_1", "s_query": None, "type": "lead"}
    assert "data/0: 'name' is a required property" in problems(
        "get", "/saved_search/", {"data": [view], "has_more": False}
    )
    job = {"id": "bulkedit_1", "n_objects_processed": "3"}
    found = problems("get", "/bulk_action/edit/{id}/", job)
    assert "n_objects_processed: '3' is not of type 'integer'" in found


# Opportunities, pipelines, tasks, merge, exports and the event log (issue 28's groundwork:
# `close_mcp.close.crm`), kept apart from USED until tools call them.
CRM_USED = [
    ("get", "/pipeline/"),
    ("get", "/status/opportunity/"),
    ("get", "/opportunity/"),
    ("get", "/opportunity/{id}/"),
    ("put", "/opportunity/{id}/"),
    ("get", "/task/"),
    ("get", "/task/{id}/"),
    ("put", "/task/{id}/"),
    ("delete", "/task/{id}/"),
    ("post", "/lead/merge/"),
    ("post", "/export/lead/"),
    ("get", "/export/{id}/"),
    ("get", "/event/"),
    ("get", "/event/{id}/"),
]
# Of those, the answers the OpenAPI file leaves undescribed (only the opportunity's is).
CRM_UNDESCRIBED = [(m, p) for m, p in CRM_USED if p not in ("/opportunity/", "/opportunity/{id}/")]
# Request bodies the file describes: a task's update (UpdateNotification) and an export's
# flags (CreateExportFlags); the others are "Any type".
CRM_REQUESTS = [("put", "/task/{id}/"), ("post", "/export/lead/")]


def test_the_crm_endpoints_are_described_as_expected() -> None:
    schemas = SPEC["components"]["schemas"]
    for method, path in CRM_USED:
        assert method in SPEC["paths"].get(path, {}), (method, path)
    undescribed = [
        (m, p) for m, p in CRM_USED if schemas[_schema_name(m, p)].get("properties") == {}
    ]
    assert undescribed == CRM_UNDESCRIBED
    for method, path in CRM_REQUESTS:
        ref = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in ref, (method, path)
    assert request_problems("put", "/task/{id}/", None, {"priority": "urgent"}) == [
        "body priority: 'urgent' is not one of ['high', 'medium']"
    ]


async def test_the_crm_answers_and_requests_match_the_openapi_description() -> None:
    sb = Sandbox(n_leads=60, clock=FakeClock())
    store = sb.store
    async with httpx.AsyncClient(
        transport=sb.transport(), base_url="http://sandbox/api/v1/", auth=(sb.api_key, "")
    ) as http:
        rec = Recorder(http)
        opp = next(iter(store.opportunities.values()))
        won = next(s.id for s in store.opportunity_statuses.values() if s.type == "won")
        task = next(iter(store.tasks.values()))
        await rec.call("get", "pipeline/", "/pipeline/")
        await rec.call("get", "status/opportunity/", "/status/opportunity/")
        await rec.call("get", "opportunity/", "/opportunity/", params={"_limit": 200})
        await rec.call("get", "opportunity/", "/opportunity/", params={"status_type": "lost"})
        await rec.call("get", f"opportunity/{opp.id}/", "/opportunity/{id}/")
        change = {"status_id": won, "confidence": 100, "date_won": "2026-01-02"}
        await rec.call("put", f"opportunity/{opp.id}/", "/opportunity/{id}/", json=change)
        await rec.call("get", "task/", "/task/", params={"is_complete": "false"})
        await rec.call("get", f"task/{task.id}/", "/task/{id}/")
        task_change = {"is_complete": True, "assigned_to": store.me.id, "date": "2026-01-05"}
        await rec.call("put", f"task/{task.id}/", "/task/{id}/", json=task_change)
        await rec.call("delete", f"task/{task.id}/", "/task/{id}/")
        source, destination = list(store.leads)[:2]
        merge = {"source": source, "destination": destination}
        await rec.call("post", "lead/merge/", "/lead/merge/", json=merge)
        export_body = {
            "s_query": lead_ids_query([destination]),
            "format": "json",
            "type": "leads",
            "include_activities": False,
            "send_done_email": False,
        }
        export = await rec.call("post", "export/lead/", "/export/lead/", json=export_body)
        sb.advance(30)
        await rec.call("get", f"export/{export['id']}/", "/export/{id}/")
        events = await rec.call("get", "event/", "/event/", params={"lead_id": source})
        await rec.call("get", f"event/{events['data'][0]['id']}/", "/event/{id}/")
    assert sorted(rec.answers) == sorted(CRM_USED)
    failures = {
        f"{method.upper()} {path}": found
        for (method, path), answers in rec.answers.items()
        for found in [sorted({p for answer in answers for p in problems(method, path, answer)})]
        if found
    }
    assert failures == {}
    assert {
        f"{m.upper()} {p}": found
        for m, p, params, body in rec.requests
        for found in [request_problems(m, p, params, body)]
        if found
    } == {}
