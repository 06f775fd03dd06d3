"""`close-mcp schemas`: the tool contract as checked-in JSON, and a check that it is current.

`tool_schemas/` holds one file per tool (name, title, description, annotations, input and
output schema, as `tools/list` gives them), the `s_query` grammar, and under `enforced/` the
full input schema of each tool, every limit included, that the server checks each call
against (`tools/list` shows a lean version: see `compact.listed_input`). Users and outside
tests read these files; CI fails when the code and the files disagree, so the contract
never drifts silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from close_mcp.selection.grammar import SQUERY_SCHEMA

SQUERY_FILE = "s_query.schema.json"
ENFORCED = "enforced"
TABLE_START = "<!-- tools:start -->"
TABLE_END = "<!-- tools:end -->"


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def tool_documents() -> dict[str, dict[str, Any]]:
    """Every tool of a server with every toolset on, as the JSON `tools/list` would give."""
    return (await _documents())[0]


async def _documents() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The `tools/list` documents and the input schemas the server enforces, by tool."""
    from close_mcp.config import load_settings
    from close_mcp.server.app import CloseMCPServer, build_server
    from close_mcp.server.runtime import Runtime

    settings = load_settings({}, sandbox=True, audit_log="off")
    server = build_server(Runtime(settings))
    assert isinstance(server, CloseMCPServer)
    documents: dict[str, dict[str, Any]] = {}
    for tool in await server.list_tools():
        doc = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
        documents[tool.name] = doc
    return documents, dict(server.enforced_schemas)


def expected_files() -> dict[str, str]:
    """Relative path -> content of every file `tool_schemas/` should hold."""
    documents, enforced = anyio.run(_documents)
    files = {f"{name}.json": _dump(doc) for name, doc in documents.items()}
    files.update({f"{ENFORCED}/{name}.json": _dump(schema) for name, schema in enforced.items()})
    files[SQUERY_FILE] = _dump(SQUERY_SCHEMA)
    return files


def tools_table(documents: list[dict[str, Any]]) -> str:
    """README's table of tools, made from the same documents as `tool_schemas/`."""
    rows = ["| tool | toolset | what it does | hints |", "|---|---|---|---|"]
    for doc in documents:
        hints = doc.get("annotations", {})
        flags = [
            name
            for name, key in (
                ("read-only", "readOnlyHint"),
                ("destructive", "destructiveHint"),
                ("idempotent", "idempotentHint"),
                ("open-world", "openWorldHint"),
            )
            if hints.get(key)
        ]
        first = doc.get("description", "").split(". ")[0].rstrip(".") + "."
        toolset = doc.get("_meta", {}).get("toolset", "")
        rows.append(f"| `{doc['name']}` | {toolset} | {first} | {', '.join(flags)} |")
    return "\n".join(rows)


def readme_with_table(readme: str, table: str) -> str:
    start, end = readme.index(TABLE_START), readme.index(TABLE_END)
    return readme[: start + len(TABLE_START)] + "\n" + table + "\n" + readme[end:]


def write_or_check(directory: str, *, check: bool) -> int:
    folder = Path(directory)
    files = expected_files()
    readme = folder.parent / "README.md"
    if readme.exists() and TABLE_START in (text := readme.read_text(encoding="utf-8")):
        documents = [
            json.loads(files[name])
            for name in sorted(files)
            if name != SQUERY_FILE and "/" not in name
        ]
        wanted = readme_with_table(text, tools_table(documents))
        if wanted != text:
            if check:
                print(
                    "close-mcp: README.md's tool table is out of date. Run `close-mcp schemas`.",
                    file=sys.stderr,
                )
                return 1
            readme.write_text(wanted, encoding="utf-8")
    present = {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
        for pattern in ("*.json", f"{ENFORCED}/*.json")
        for p in folder.glob(pattern)
    }
    stale = sorted(name for name in files if present.get(name) != files[name])
    extra = sorted(set(present) - set(files))
    if check:
        if stale or extra:
            print(
                f"close-mcp: {folder}/ is out of date (differs: {', '.join(stale) or 'none'}; "
                f"not a tool: {', '.join(extra) or 'none'}). Run `close-mcp schemas`.",
                file=sys.stderr,
            )
            return 1
        print(f"{folder}/ matches the code ({len(files)} files)", file=sys.stderr)
        return 0
    (folder / ENFORCED).mkdir(parents=True, exist_ok=True)
    for name in extra:
        (folder / name).unlink()
    for name in stale:
        (folder / name).write_text(files[name], encoding="utf-8")
    print(f"wrote {len(stale)} of {len(files)} files to {folder}/", file=sys.stderr)
    return 0
