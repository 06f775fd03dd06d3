"""The `s_query` evaluator: Close's Advanced Filtering grammar, compiled to Python predicates.

Used by `/data/search/` and by bulk jobs when they load their selection, so a preview and the
job that follows select the same leads. Every malformed piece raises `QueryError` naming its
path (`query.queries.1.condition.type`), which the routes answer as a 400 with `field-errors`.
"""

import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from close_mcp.sandbox.errors import QueryError
from close_mcp.sandbox.moments import MOMENT_BOUNDS, Moments
from close_mcp.sandbox.query_fields import (
    CONDITIONS_BY_KIND,
    REGULAR_FIELDS,
    RELATIONS,
    FieldSpec,
    custom_spec,
)
from close_mcp.sandbox.related import RELATED_KINDS, LeadRelated
from close_mcp.sandbox.store import JSON, Contact, Lead, Store

Pred = Callable[[Any], bool]
ValuePred = Callable[[list[Any]], bool]

TEXT_MODES = ("full_words", "phrase", "beginning_of_words", "exact_value")
MAX_DEPTH = 32


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def text_matches(mode: str, value: str, texts: Iterable[str]) -> bool:
    """Close's text modes, case-insensitive, over one or more texts taken as one document."""
    texts = [t for t in texts if t]
    if mode == "exact_value":
        wanted = value.casefold().strip()
        return any(t.casefold().strip() == wanted for t in texts)
    wanted_words = _words(value)
    if mode == "phrase":
        n = len(wanted_words)
        for t in texts:
            words = _words(t)
            if any(words[i : i + n] == wanted_words for i in range(len(words) - n + 1)):
                return True
        return False
    all_words = {w for t in texts for w in _words(t)}
    if mode == "full_words":
        return all(w in all_words for w in wanted_words)
    return all(any(have.startswith(w) for have in all_words) for w in wanted_words)


class Compiler:
    """Turns a query tree into a predicate, checking every node on the way."""

    def __init__(self, store: Store, now: datetime, tz: timedelta = timedelta(0)) -> None:
        """`tz`: the request's `X-TZ-Offset`, in which local dates and day ends are read."""
        self.store = store
        self.now = now
        self.tz = tz
        self.moment = Moments(now, tz).moment
        self._related = LeadRelated(store)

    # -- nodes ---------------------------------------------------------------------------

    def node(self, node: Any, path: str, ctx: str, depth: int = 0) -> Pred:
        if depth > MAX_DEPTH:
            raise QueryError({path: "Query is nested too deeply."})
        if not isinstance(node, dict):
            raise QueryError({path: "Expected an object."})
        negate = node.get("negate", False)
        if not isinstance(negate, bool):
            raise QueryError({f"{path}.negate": "Must be a boolean."})
        kind = node.get("type")
        builders: dict[str, Callable[[JSON, str, str, int], Pred]] = {
            "and": self._and_or,
            "or": self._and_or,
            "object_type": self._object_type,
            "field_condition": self._field_condition,
            "has_related": self._has_related,
            "match_all": lambda n, p, c, d: lambda obj: True,
            "saved_search": self._saved_search,
            "text": self._full_text,
        }
        if kind is None:
            raise QueryError({f"{path}.type": "Missing data for required field."})
        if kind not in builders:
            raise QueryError({f"{path}.type": f"Unknown query type {kind!r}."})
        pred = builders[kind](node, path, ctx, depth)
        if negate:
            inner = pred
            return lambda obj: not inner(obj)
        return pred

    def _and_or(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        queries = node.get("queries")
        if not isinstance(queries, list):
            raise QueryError({f"{path}.queries": "Expected a list of queries."})
        preds = [self.node(q, f"{path}.queries.{i}", ctx, depth + 1) for i, q in enumerate(queries)]
        if node["type"] == "and":
            return lambda obj: all(p(obj) for p in preds)
        return lambda obj: any(p(obj) for p in preds)

    def _object_type(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        object_type = node.get("object_type")
        if not isinstance(object_type, str):
            raise QueryError({f"{path}.object_type": "Missing data for required field."})
        if object_type != ctx:
            raise QueryError(
                {f"{path}.object_type": f"Expected {ctx!r} here; the sandbox searches leads only."}
            )
        return lambda obj: True

    def _field_condition(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        spec = self.field(node.get("field"), f"{path}.field", ctx)
        check = self.condition(node.get("condition"), f"{path}.condition", spec)
        get = spec.get
        return lambda obj: check(get(obj))

    def _has_related(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        this = node.get("this_object_type", ctx)
        if this != ctx:
            raise QueryError({f"{path}.this_object_type": f"Expected {ctx!r} here."})
        related = node.get("related_object_type")
        if not isinstance(related, str):
            raise QueryError({f"{path}.related_object_type": "Missing data for required field."})
        relation = RELATIONS.get((ctx, related))
        if ctx == "lead" and related in RELATED_KINDS:
            relation = self._related.of(related)
        if relation is None:
            raise QueryError(
                {
                    f"{path}.related_object_type": (
                        f"{ctx!r} -> {related!r} is not supported by the sandbox."
                    )
                }
            )
        if "related_query" not in node:
            raise QueryError({f"{path}.related_query": "Missing data for required field."})
        inner = self.node(node["related_query"], f"{path}.related_query", related, depth + 1)
        return lambda obj: any(inner(r) for r in relation(obj))

    def _saved_search(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        view_id = node.get("saved_search_id")
        if not isinstance(view_id, str):
            raise QueryError({f"{path}.saved_search_id": "Missing data for required field."})
        view = self.store.saved_searches.get(view_id)
        if view is None:
            raise QueryError({f"{path}.saved_search_id": f"Saved search {view_id!r} not found."})
        if ctx != "lead":
            raise QueryError({f"{path}.type": "A saved search selects leads."})
        tree = view.s_query.get("query", view.s_query)
        return self.node(tree, f"{path}(saved_search {view_id})", ctx, depth + 1)

    def _full_text(self, node: JSON, path: str, ctx: str, depth: int) -> Pred:
        mode, value = self._text_args(node, path)

        def texts(obj: Any) -> list[str]:
            if ctx == "lead":
                lead: Lead = obj
                out = [lead.name]
                for c in lead.contacts:
                    out += [c.name, c.title, *(e["email"] for e in c.emails)]
                return out
            if ctx == "contact":
                contact: Contact = obj
                return [contact.name, contact.title, *(e["email"] for e in contact.emails)]
            return [str(obj["email"])]

        return lambda obj: text_matches(mode, value, texts(obj))

    # -- fields --------------------------------------------------------------------------

    def field(self, ref: Any, path: str, ctx: str) -> FieldSpec:
        if not isinstance(ref, dict):
            raise QueryError({path: "Missing data for required field."})
        kind = ref.get("type")
        if kind == "regular_field":
            object_type = ref.get("object_type", ctx)
            if object_type != ctx:
                raise QueryError(
                    {f"{path}.object_type": f"Expected {ctx!r}; use has_related for others."}
                )
            name = ref.get("field_name")
            spec = REGULAR_FIELDS[ctx].get(name) if isinstance(name, str) else None
            if spec is None:
                raise QueryError({f"{path}.field_name": f"Unknown {ctx} field {name!r}."})
            return spec
        if kind == "custom_field":
            cf_id = ref.get("custom_field_id")
            cf = self.store.custom_fields.get(cf_id) if isinstance(cf_id, str) else None
            if cf is None or ctx != "lead":
                raise QueryError(
                    {f"{path}.custom_field_id": f"Unknown lead custom field {cf_id!r}."}
                )
            return custom_spec(cf.id, cf.type, self.tz)
        if kind is None:
            raise QueryError({f"{path}.type": "Missing data for required field."})
        raise QueryError({f"{path}.type": f"Unknown field type {kind!r}."})

    # -- conditions ----------------------------------------------------------------------

    def condition(self, cond: Any, path: str, spec: FieldSpec) -> ValuePred:
        if not isinstance(cond, dict):
            raise QueryError({path: "Missing data for required field."})
        kind = cond.get("type")
        builders: dict[str, Callable[[JSON, str, FieldSpec], ValuePred]] = {
            "text": self._text_cond,
            "term": self._term_cond,
            "reference": self._reference_cond,
            "number_range": self._number_cond,
            "moment_range": self._moment_cond,
            "exists": lambda c, p, s: lambda values: bool(values),
        }
        if kind is None:
            raise QueryError({f"{path}.type": "Missing data for required field."})
        if kind not in builders:
            raise QueryError({f"{path}.type": f"Unknown condition type {kind!r}."})
        if kind not in CONDITIONS_BY_KIND[spec.kind]:
            raise QueryError(
                {f"{path}.type": f"Condition {kind!r} does not apply to a {spec.kind} field."}
            )
        return builders[kind](cond, path, spec)

    def _text_args(self, cond: JSON, path: str) -> tuple[str, str]:
        mode, value = cond.get("mode"), cond.get("value")
        if mode not in TEXT_MODES:
            raise QueryError({f"{path}.mode": f"Must be one of: {', '.join(TEXT_MODES)}."})
        if not isinstance(value, str) or not value.strip():
            raise QueryError({f"{path}.value": "Must be a non-empty string."})
        return str(mode), value

    def _text_cond(self, cond: JSON, path: str, spec: FieldSpec) -> ValuePred:
        mode, value = self._text_args(cond, path)
        return lambda values: text_matches(mode, value, [str(v) for v in values])

    def _term_cond(self, cond: JSON, path: str, spec: FieldSpec) -> ValuePred:
        values = cond.get("values")
        if not isinstance(values, list) or not values:
            raise QueryError({f"{path}.values": "Must be a non-empty list."})
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise QueryError({f"{path}.values": "Values must be strings or numbers."})
        wanted = set(values)
        return lambda have: any(v in wanted for v in have)

    def _reference_cond(self, cond: JSON, path: str, spec: FieldSpec) -> ValuePred:
        reference_type, ids = cond.get("reference_type"), cond.get("object_ids")
        if not isinstance(reference_type, str) or not reference_type:
            raise QueryError({f"{path}.reference_type": "Missing data for required field."})
        if spec.reference_types and reference_type not in spec.reference_types:
            allowed = " or ".join(repr(t) for t in spec.reference_types)
            raise QueryError({f"{path}.reference_type": f"Must be {allowed}."})
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise QueryError({f"{path}.object_ids": "Must be a list of ids."})
        wanted = set(ids)
        return lambda have: any(v in wanted for v in have)

    def _number_cond(self, cond: JSON, path: str, spec: FieldSpec) -> ValuePred:
        bounds: dict[str, float] = {}
        for key in ("gt", "gte", "lt", "lte"):
            if cond.get(key) is None:
                continue
            value = cond[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise QueryError({f"{path}.{key}": "Must be a number."})
            try:
                bounds[key] = float(value)
            except OverflowError:
                raise QueryError({f"{path}.{key}": "Number out of range."}) from None
            if not math.isfinite(bounds[key]):
                raise QueryError({f"{path}.{key}": "Must be a finite number."})

        def check(number: float) -> bool:
            return (
                ("gt" not in bounds or number > bounds["gt"])
                and ("gte" not in bounds or number >= bounds["gte"])
                and ("lt" not in bounds or number < bounds["lt"])
                and ("lte" not in bounds or number <= bounds["lte"])
            )

        return lambda have: any(check(float(v)) for v in have)

    def _moment_cond(self, cond: JSON, path: str, spec: FieldSpec) -> ValuePred:
        """Each bound given (`null`, as Close's UI copies it, is no bound) must hold."""
        at: dict[str, datetime | None] = {
            key: None if cond.get(key) is None else self.moment(cond[key], f"{path}.{key}")
            for key in MOMENT_BOUNDS
        }
        if spec.day_only:
            for key in MOMENT_BOUNDS:
                if isinstance(cond.get(key), dict) and cond[key].get("type") == "fixed_utc":
                    raise QueryError(
                        {
                            f"{path}.{key}.type": (
                                "A date field takes fixed_local_date moments, not fixed_utc."
                            )
                        }
                    )
        lo, lo_x, hi, hi_i = at["on_or_after"], at["after"], at["before"], at["on_or_before"]

        def check(moment: datetime) -> bool:
            return (
                (lo is None or moment >= lo)
                and (lo_x is None or moment > lo_x)
                and (hi is None or moment < hi)
                and (hi_i is None or moment <= hi_i)
            )

        return lambda have: any(check(v) for v in have)
