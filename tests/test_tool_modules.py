"""A trap the SDK sets for tool modules, shut by a test.

The SDK reads `Resolve(...)` markers from evaluated annotations. With
`from __future__ import annotations` in a tool module, every annotation is a string, the
markers are never seen, and each resolver (`request`, `answer`) silently becomes an argument
the model must fill in. Only `declare.py`, which builds every tool's signature, writes
them. `test_files_equal_what_tools_list_serves` (test_schemas.py) would then fail on the
drifted schema; these name the cause directly.
"""

import ast
from pathlib import Path

import pytest

from close_mcp.config import load_settings
from close_mcp.server.runtime import Runtime
from close_mcp.server.tools import build_tools

TOOLS_DIR = Path(__file__).resolve().parents[1] / "close_mcp" / "server" / "tools"
RESOLVED = {"ctx", "request", "answer", "invocation", "args"}


def _postpones_annotations(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )


RESOLVING = sorted(p for p in TOOLS_DIR.glob("*.py") if "Resolve(" in p.read_text("utf-8"))


def test_the_modules_with_resolvers_are_found() -> None:
    assert {p.name for p in RESOLVING} == {"declare.py"}


@pytest.mark.parametrize("path", RESOLVING, ids=lambda p: p.name)
def test_no_module_with_resolvers_postpones_annotations(path: Path) -> None:
    assert not _postpones_annotations(path), (
        f"{path.name} imports annotations from __future__: its Resolve(...) resolvers would "
        "become tool arguments"
    )


def test_no_resolver_is_a_tool_argument() -> None:
    runtime = Runtime(load_settings(sandbox=True))
    for tool in build_tools(runtime).tools:
        properties = set(tool.parameters.get("properties", {}))
        assert not properties & RESOLVED, (tool.name, properties & RESOLVED)
