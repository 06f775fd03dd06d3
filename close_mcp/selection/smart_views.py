"""Smart views inlined: a view's stored tree in place of its name or `saved_search` node.

The body of a bulk action (and its confirmation token) then carries what Close will really
run, not a reference Close resolves later, when the view may have changed. A view limited to
its first N leads brings its limit and its order along.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from close_mcp.close.catalog import Catalog, SmartView
from close_mcp.errors import ArgumentError
from close_mcp.selection.filter import LeadFilter
from close_mcp.selection.nodes import top_object_type

MAX_VIEW_NESTING: Final = 4  # smart views inlined inside smart views, at most this deep


async def smart_view_node(name: str, catalog: Catalog) -> dict[str, Any]:
    """The view's own tree, inlined (not a `saved_search` node: unverified inside bulk actions)."""
    view = await catalog.resolve_smart_view(name, path="filter.smart_view")
    return await _view_tree(view, catalog, "filter.smart_view", ())


async def _view_tree(
    view: SmartView, catalog: Catalog, path: str, chain: tuple[str, ...]
) -> dict[str, Any]:
    """A copy of the view's stored tree, its own `saved_search` nodes inlined in turn."""
    if view.query is None:
        raise ArgumentError(path, f"smart view {view.name!r} ({view.id}) has no stored query")
    object_type = top_object_type(view.query)
    if (view.type not in (None, "lead")) or object_type not in (None, "lead"):
        raise ArgumentError(
            path,
            f"smart view {view.name!r} ({view.id}) selects {object_type or view.type} "
            "objects, not leads",
        )
    return await inline_views(copy.deepcopy(view.query), catalog, path, (*chain, view.id))


async def inline_views(
    node: dict[str, Any], catalog: Catalog, path: str, chain: tuple[str, ...], ctx: str = "lead"
) -> dict[str, Any]:
    """`node` with every `saved_search` node replaced by its view's tree, so the body (and the
    confirmation token) carry what Close will really run, not a reference Close resolves later.

    `path` names the argument at fault: the node's own place in an `s_query`, or, inside an
    inlined view, the place of the outermost `saved_search` node. `chain` is the views being
    inlined, outermost first (a view met again is a cycle).
    """
    inside_view = bool(chain)
    if node.get("type") == "saved_search":
        view_id = node.get("saved_search_id")
        if not isinstance(view_id, str):
            raise ArgumentError(f"{path}.saved_search_id", "missing the smart view id")
        if ctx != "lead":
            raise ArgumentError(path, f"a smart view selects leads; it cannot match {ctx} objects")
        via = " -> ".join((*chain, view_id))
        if view_id in chain:
            raise ArgumentError(path, f"smart views refer to each other in a cycle: {via}")
        if len(chain) >= MAX_VIEW_NESTING:
            raise ArgumentError(
                path, f"smart views nested more than {MAX_VIEW_NESTING} deep: {via}"
            )
        view = await catalog.resolve_smart_view(view_id, path=path)
        if view.results_limit is not None:
            raise ArgumentError(
                path,
                f"smart view {view.name!r} ({view.id}) shows only its first "
                f"{view.results_limit} leads, which a saved_search node inside a query cannot "
                "keep; select it alone with filter.smart_view",
            )
        tree = await _view_tree(view, catalog, path, chain)
        if node.get("negate"):
            tree = {"type": "and", "queries": [tree], "negate": True}
        return tree
    out = dict(node)
    queries = node.get("queries")
    if isinstance(queries, list):
        out["queries"] = [
            await inline_views(
                q, catalog, path if inside_view else f"{path}.queries[{i}]", chain, ctx
            )
            if isinstance(q, dict)
            else q
            for i, q in enumerate(queries)
        ]
    related = node.get("related_query")
    if isinstance(related, dict):
        related_type = node.get("related_object_type")
        out["related_query"] = await inline_views(
            related,
            catalog,
            path if inside_view else f"{path}.related_query",
            chain,
            related_type if isinstance(related_type, str) else "",
        )
    return out


def limited_view(
    filter: LeadFilter, view: SmartView, results_limit: int | None, sort: list[Any] | None
) -> tuple[int | None, list[Any] | None]:
    """A view with a limit shows only its first N leads by its sort: never act on others."""
    if view.results_limit is None:
        return results_limit, sort
    where = f"smart view {view.name!r} ({view.id}) shows only its first {view.results_limit} leads"
    others = [
        name
        for name in LeadFilter.model_fields
        if name != "smart_view" and getattr(filter, name) is not None
    ]
    if others:
        raise ArgumentError(
            "filter",
            f"{where}; combined with {', '.join(others)} the limit would pick other leads. "
            "Use the smart view alone, or pass an s_query",
        )
    if sort is not None and sort != (view.sort or None):
        raise ArgumentError(
            "sort", f"{where} in its own order; leave sort out to use the view's order"
        )
    limit = view.results_limit if results_limit is None else min(results_limit, view.results_limit)
    return limit, view.sort
