"""Helpers the selection unit tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from close_mcp.close.catalog import Catalog
from close_mcp.errors import ArgumentError
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.resolve import resolve_selection
from close_mcp.selection.tree import resolve_filter


async def resolve(catalog: Catalog, **fields: Any) -> dict[str, Any]:
    return await resolve_filter(LeadFilter(**fields), catalog)


async def selection_error(catalog: Catalog, **kwargs: Any) -> str:
    with pytest.raises(ArgumentError) as info:
        await resolve_selection(catalog=catalog, **kwargs)
    return str(info.value)
