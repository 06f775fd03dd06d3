"""The checked-in tool contract: `tool_schemas/` is current, and the server enforces it.

Generic over the tools: a tool added later is covered once `close-mcp schemas` has written
its file. Argument sets that break a tool's checked-in input schema under `enforced/` (checked with
`jsonschema` first) must come back as tool errors, with nothing sent to Close's write
endpoints.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from close_mcp.cli.main import main
from close_mcp.sandbox import SANDBOX_API_KEY
from close_mcp.selection.grammar import SQUERY_SCHEMA
from close_mcp.server.schemas import ENFORCED, SQUERY_FILE, write_or_check
from close_mcp.server.tools import declarations
from tests.harness import MODES, Harness, Mode, text_of
from tests.queries import lead_ids_query

FOLDER = Path(__file__).resolve().parent.parent / "tool_schemas"
TOOL_KEYS = {"name", "title", "description", "annotations", "inputSchema", "outputSchema", "_meta"}


def tool_files() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(FOLDER.glob("*.json"))
        if path.name != SQUERY_FILE
    }


def enforced_files() -> dict[str, dict[str, Any]]:
    """The full input schema of each tool, the one the server checks calls against."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((FOLDER / ENFORCED).glob("*.json"))
    }


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "tool_schemas"
    shutil.copytree(FOLDER, target)
    return target


# -- the folder and the check ----------------------------------------------------------------


def test_folder_holds_one_complete_file_per_tool_and_the_s_query_schema() -> None:
    files = tool_files()
    assert len(files) >= 5
    for stem, doc in files.items():
        assert set(doc) == TOOL_KEYS, stem
        assert doc["name"] == stem
        assert doc["title"], stem
        assert doc["description"], stem
        assert set(doc["annotations"]) == {
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        }, stem
        assert doc["inputSchema"]["type"] == "object", stem
        assert doc["outputSchema"]["type"] == "object", stem
        Draft202012Validator.check_schema(doc["inputSchema"])
        Draft202012Validator.check_schema(doc["outputSchema"])
    assert set(enforced_files()) == set(files)
    declared = {tool.name: tool for tool in declarations()}
    for stem, schema in enforced_files().items():
        Draft202012Validator.check_schema(schema)
        # the lean listed schema names exactly the arguments the server accepts, but those
        # the tool takes and leaves to search_leads to describe (BulkSelection.UNLISTED)
        unlisted = set(getattr(declared[stem].arguments, "UNLISTED", ()))
        assert unlisted <= set(schema["properties"]), stem
        listed = set(files[stem]["inputSchema"]["properties"])
        assert set(schema["properties"]) - unlisted == listed, stem
    squery = json.loads((FOLDER / SQUERY_FILE).read_text(encoding="utf-8"))
    assert squery == SQUERY_SCHEMA
    Draft202012Validator.check_schema(squery)


def test_check_passes_on_the_committed_folder(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "--check", "--dir", str(copy)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    count = 2 * len(tool_files()) + 1
    assert captured.err == f"{copy}/ matches the code ({count} files)\n"


def test_check_fails_naming_an_altered_file(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy / "lookup.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["description"] += " Changed by hand."
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert write_or_check(str(copy), check=True) == 1
    err = capsys.readouterr().err
    assert "differs: lookup.json;" in err
    assert "not a tool: none" in err
    assert len(err.strip().splitlines()) == 1


def test_check_fails_naming_an_extra_and_a_missing_file(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "retired_tool.json").write_text("{}\n", encoding="utf-8")
    (copy / "search_leads.json").unlink()
    assert main(["schemas", "--check", "--dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "differs: search_leads.json;" in err
    assert "not a tool: retired_tool.json)" in err


def test_writing_repairs_the_folder_to_the_committed_bytes(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "retired_tool.json").write_text("{}\n", encoding="utf-8")
    (copy / "lookup.json").write_text("{}\n", encoding="utf-8")
    (copy / "search_leads.json").unlink()
    assert main(["schemas", "--dir", str(copy)]) == 0
    count = 2 * len(tool_files()) + 1
    assert capsys.readouterr().err == f"wrote 2 of {count} files to {copy}/\n"
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == sorted(
        p.relative_to(FOLDER) for p in FOLDER.rglob("*")
    )
    for path in FOLDER.rglob("*.json"):
        relative = path.relative_to(FOLDER)
        assert (copy / relative).read_bytes() == path.read_bytes(), relative
    assert write_or_check(str(copy), check=True) == 0


def test_writing_into_a_new_folder(tmp_path: Path) -> None:
    target = tmp_path / "fresh" / "schemas"
    assert write_or_check(str(target), check=False) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in FOLDER.iterdir())


# -- the files are what the server serves ----------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=5, toolsets="all")
async def test_files_equal_what_tools_list_serves(mode: Mode, h: Harness) -> None:
    listed = (await h.client.list_tools()).tools
    files = tool_files()
    assert sorted(tool.name for tool in listed) == sorted(files)
    for tool in listed:
        served = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        doc = files[tool.name]
        assert served["inputSchema"] == doc["inputSchema"], tool.name
        assert {key: served.get(key) for key in TOOL_KEYS} == doc, tool.name


# -- arguments that break the schema are refused ---------------------------------------------

BAD = "zz-not-allowed"
WRONG_TYPES: list[tuple[str, Any]] = [
    ("object", {"x": 1}),
    ("array", [{"x": 1}]),
    ("string", BAD),
    ("number", 12.5),
]


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: dict[str, Any] = root["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return schema


def branches(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a property (anyOf/oneOf), `$ref`s resolved, `null` left out."""
    schema = resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [resolve(o, root) for o in options if o.get("type") != "null"]


def json_types(options: list[dict[str, Any]]) -> set[str]:
    types: set[str] = set()
    for option in options:
        kind = option.get("type")
        if isinstance(kind, str):
            types.add(kind)
        elif "properties" in option or "oneOf" in option or "anyOf" in option:
            types.add("object")
        else:  # enum/const without a type, or anything: assume any type may pass
            types |= {"object", "array", "string", "number", "integer", "boolean"}
    return types  # "integer" alone keeps 12.5 out, as JSON Schema does


def strict_mutations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, properties to merge) that break the schema whatever the rest of the call is."""
    for name, prop in schema.get("properties", {}).items():
        options = branches(prop, schema)
        allowed = json_types(options)
        wrong = next((value for kind, value in WRONG_TYPES if kind not in allowed), None)
        if wrong is not None:
            yield f"{name}: wrong type", {name: wrong}
        for option in options:
            if "enum" in option:
                yield f"{name}: not in enum", {name: BAD}
            if "pattern" in option:
                yield f"{name}: pattern", {name: "!! " + BAD}
            if "maxLength" in option:
                yield f"{name}: too long", {name: "x" * (option["maxLength"] + 1)}
            if "maximum" in option:
                yield f"{name}: above maximum", {name: option["maximum"] + 1}
            if "minimum" in option:
                yield f"{name}: below minimum", {name: option["minimum"] - 1}
            if "maxItems" in option:
                yield f"{name}: too many items", {name: [{}] * (option["maxItems"] + 1)}
            if option.get("additionalProperties") is False:
                yield f"{name}: unknown nested field", {name: {"zz_unknown": 1}}


def lax_mutations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Values a lenient parser would coerce, though JSON Schema refuses them."""
    for name, prop in schema.get("properties", {}).items():
        allowed = json_types(branches(prop, schema))
        if allowed & {"integer", "number"} and "string" not in allowed:
            yield f"{name}: number as a string", {name: "5"}
        if "integer" in allowed and "boolean" not in allowed:
            yield f"{name}: boolean for an integer", {name: True}
        if "boolean" in allowed and "string" not in allowed:
            yield f"{name}: boolean as a string", {name: "true"}
        if "boolean" in allowed and "integer" not in allowed:
            yield f"{name}: integer for a boolean", {name: 1}
        if allowed == {"object"}:
            yield f"{name}: object as a JSON string", {name: '{"lead_status": "Qualified"}'}


async def make_job(h: Harness) -> str:
    async with httpx.AsyncClient(
        transport=h.sandbox.transport(),
        base_url="http://sandbox/api/v1/",
        auth=(SANDBOX_API_KEY, ""),
    ) as http:
        status = next(iter(h.sandbox.store.statuses))
        lead = next(iter(h.sandbox.store.leads))
        query = lead_ids_query([lead])
        body = {"s_query": query, "type": "set_lead_status", "lead_status_id": status}
        response = await http.post("bulk_action/edit/", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def bases(h: Harness, job_id: str) -> dict[str, dict[str, Any]]:
    """A valid call of each tool known today (write tools: one that would really run)."""
    lead = {"lead_ids": [next(iter(h.sandbox.store.leads))]}
    return {
        "search_leads": {"filter": {"lead_status": "Qualified"}},
        "lookup": {"kind": "users"},
        "list_bulk_jobs": {},
        "get_bulk_job": {"job_id": job_id},
        "wait_for_bulk_job": {"job_id": job_id, "timeout_s": 0},
        "create_bulk_edit": {
            "filter": lead,
            "edit": {"type": "set_lead_status", "lead_status": "Customer"},
        },
        "create_bulk_email": {"filter": lead, "template": "Intro"},
        "create_bulk_sequence_subscription": {
            "filter": lead,
            "action_type": "pause",
            "sequence": "Onboarding",
        },
        "create_bulk_delete": {"filter": lead},
        "cancel_email": {"activity_id": scheduled_email(h)},
    }


def scheduled_email(h: Harness) -> str:
    """An email waiting to go out, made straight in the sandbox: what cancel_email takes back."""
    from close_mcp.sandbox import emails

    data = {
        "lead_id": next(iter(h.sandbox.store.leads)),
        "status": "scheduled",
        "date_scheduled": "2026-01-02T09:00:00+00:00",
        "sender": "sandra@sandbox.example",
        "body_text": "x",
    }
    return str(emails.create(h.sandbox.store, data, h.clock.time())["id"])


def fallback_base(schema: dict[str, Any], h: Harness, job_id: str) -> dict[str, Any]:
    """For a tool added later: the ids we can fill in; other required fields stay missing."""
    known = {"job_id": job_id, "lead_id": next(iter(h.sandbox.store.leads))}
    return {name: known[name] for name in schema.get("required", []) if name in known}


async def refused(h: Harness, tool: str, arguments: dict[str, Any], schema: dict[str, Any]) -> str:
    """Checks the call breaks the schema, then that the server refuses it; the error text."""
    assert not Draft202012Validator(schema).is_valid(arguments), (tool, arguments)
    result = await h.call_raw(tool, arguments)
    assert result.is_error, (tool, arguments, result.structured_content)
    return text_of(result)


async def check_refusals(h: Harness, *, lax: bool) -> None:
    job_id = await make_job(h)
    known = bases(h, job_id)
    for tool, schema in enforced_files().items():
        if tool in known:
            base = known[tool]
            assert Draft202012Validator(schema).is_valid(base), tool
            control = dict(base)
            if "dry_run" in schema["properties"]:
                control["dry_run"] = True
            ok = await h.call_raw(tool, control)
            assert not ok.is_error, (tool, text_of(ok))
        else:
            base = fallback_base(schema, h, job_id)
        h.clear()
        cases = list(lax_mutations(schema) if lax else strict_mutations(schema))
        if not lax:
            cases += [(f"{name}: missing", {}) for name in schema.get("required", [])]
        assert cases or lax, tool
        for what, change in cases:
            arguments = {**base, **change}
            if what.endswith(": missing"):
                arguments.pop(what.removesuffix(": missing"), None)
            if Draft202012Validator(schema).is_valid(arguments):
                continue  # this change happens to be allowed here
            message = await refused(h, tool, arguments, schema)
            assert what.split(":")[0] in message, (tool, what, message)
        assert h.writes() == [], tool


@pytest.mark.anyio
@pytest.mark.harness(n_leads=20, toolsets="all")
@pytest.mark.parametrize("mode", MODES)
async def test_calls_breaking_the_input_schema_are_tool_errors_and_write_nothing(
    h: Harness,
) -> None:
    await check_refusals(h, lax=False)


@pytest.mark.anyio
@pytest.mark.harness(n_leads=20, toolsets="all")
async def test_values_a_lenient_parser_would_coerce_are_refused(h: Harness) -> None:
    await check_refusals(h, lax=True)
