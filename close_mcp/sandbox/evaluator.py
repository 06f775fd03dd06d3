"""The `s_query` evaluator: Close's Advanced Filtering grammar, compiled to Python predicates.

Used by `/data/search/` and by bulk jobs when they load their selection, so a preview and the
job that follows select the same leads. Every malformed piece raises `QueryError` naming its
path (`query.queries.1.condition.type`), which the routes answer as a 400 with `field-errors`.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from close_mcp.sandbox.errors import BadRequest
from close_mcp.sandbox.store import JSON, Contact, Lead, Store

Pred = Callable[[Any], bool]
ValuePred = Callable[[list[Any]], bool]

TEXT_MODES = ("full_words", "phrase", "beginning_of_words", "exact_value")
MAX_DEPTH = 32


QueryError = BadRequest  # a query Close would refuse: field path -> message


@dataclass(frozen=True)
class FieldSpec:
    """How to read a field: its kind decides which conditions apply."""

    kind: str  # text, choice, number, date, reference
    get: Callable[[Any], list[Any]]
    reference_types: tuple[str, ...] = ()  # what a reference condition may name, first preferred
    day_only: bool = False  # a date custom field: a day, compared with local dates only


def _one(value: Any) -> list[Any]:
    return [] if value is None or value == "" else [value]


def _day_start(value: str, tz: timedelta = timedelta(0)) -> datetime | None:
    """The instant the day `value` begins where clocks are `tz` ahead of UTC."""
    try:
        day = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        return day - tz
    except (ValueError, OverflowError):
        return None


# Close documents both forms for user fields ("user" and "user_or_group").
USER_REFERENCE = ("user_or_group", "user")

LEAD_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec("reference", lambda o: [o.id], ("lead",)),
    "name": FieldSpec("text", lambda o: _one(o.name)),
    "display_name": FieldSpec("text", lambda o: _one(o.display_name)),
    "description": FieldSpec("text", lambda o: _one(o.description)),
    "url": FieldSpec("text", lambda o: _one(o.url)),
    "status_id": FieldSpec("reference", lambda o: [o.status_id], ("status.lead",)),
    "date_created": FieldSpec("date", lambda o: [o.date_created]),
    "date_updated": FieldSpec("date", lambda o: [o.date_updated]),
    "created_by": FieldSpec("reference", lambda o: _one(o.created_by), USER_REFERENCE),
    "num_contacts": FieldSpec("number", lambda o: [len(o.contacts)]),
}
CONTACT_FIELDS: dict[str, FieldSpec] = {
    "id": FieldSpec("reference", lambda o: [o.id], ("contact",)),
    "lead_id": FieldSpec("reference", lambda o: [o.lead_id], ("lead",)),
    "name": FieldSpec("text", lambda o: _one(o.name)),
    "display_name": FieldSpec("text", lambda o: _one(o.name)),
    "title": FieldSpec("text", lambda o: _one(o.title)),
    "date_created": FieldSpec("date", lambda o: [o.date_created]),
    "date_updated": FieldSpec("date", lambda o: [o.date_updated]),
}
EMAIL_FIELDS: dict[str, FieldSpec] = {
    "email": FieldSpec("text", lambda o: _one(o["email"])),
    "type": FieldSpec("choice", lambda o: _one(o.get("type"))),
}


def _when(value: Any) -> list[datetime]:
    """An activity's ISO date as a UTC datetime (none when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return []
    try:
        return [datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)]
    except ValueError:
        return []


# An email activity, as Close's UI filters it ("emailed in the last 30 days": outgoing, by
# `date`): `date` is when it was sent, or made when it was not sent.
EMAIL_ACTIVITY_FIELDS: dict[str, FieldSpec] = {
    "direction": FieldSpec("choice", lambda o: _one(o.get("direction"))),
    "status": FieldSpec("choice", lambda o: _one(o.get("status"))),
    "date": FieldSpec("date", lambda o: _when(o.get("date_sent") or o.get("date_created"))),
    "date_created": FieldSpec("date", lambda o: _when(o.get("date_created"))),
}
REGULAR_FIELDS = {
    "lead": LEAD_FIELDS,
    "contact": CONTACT_FIELDS,
    "contact_email": EMAIL_FIELDS,
    "activity.email": EMAIL_ACTIVITY_FIELDS,
}
RELATIONS: dict[tuple[str, str], Callable[[Any], list[Any]]] = {
    ("lead", "contact"): lambda lead: list(lead.contacts),
    ("lead", "contact_email"): lambda lead: [e for c in lead.contacts for e in c.emails],
    ("contact", "contact_email"): lambda contact: list(contact.emails),
}
CONDITIONS_BY_KIND = {
    "text": {"text", "term", "exists"},
    "choice": {"text", "term", "exists"},
    "number": {"number_range", "term", "exists"},
    "date": {"moment_range", "exists"},
    # ID fields take a reference condition naming the ID's type, as Close documents; a `term`
    # on an ID is not documented, so it is refused.
    "reference": {"reference", "exists"},
}


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


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MOMENT_BOUNDS = ("on_or_after", "after", "before", "on_or_before")
OFFSET_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


class Compiler:
    """Turns a query tree into a predicate, checking every node on the way."""

    def __init__(self, store: Store, now: datetime, tz: timedelta = timedelta(0)) -> None:
        """`tz`: the request's `X-TZ-Offset`, in which local dates and day ends are read."""
        self.store = store
        self.now = now
        self.tz = tz
        self._emails_by_lead: dict[str, list[JSON]] | None = None

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
        if (ctx, related) == ("lead", "activity.email"):
            relation = self._emails_of
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

    def _emails_of(self, lead: Lead) -> list[JSON]:
        """The lead's email activities (indexed once per query)."""
        if self._emails_by_lead is None:
            self._emails_by_lead = {}
            for email in self.store.emails.values():
                self._emails_by_lead.setdefault(str(email.get("lead_id")), []).append(email)
        return self._emails_by_lead.get(lead.id, [])

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
            return _custom_spec(cf.id, cf.type, self.tz)
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

    def moment(self, moment: Any, path: str) -> datetime:
        """Resolve a moment to a UTC datetime; local dates are days in the offset `tz`.

        A moment outside the calendar (year 10000 once in UTC, now minus 5,000 years) is a
        400 naming it, as Close answers, never a crash.
        """
        try:
            return self._moment(moment, path)
        except (OverflowError, ValueError):
            raise QueryError({path: "Date out of range."}) from None

    def _moment(self, moment: Any, path: str) -> datetime:
        if not isinstance(moment, dict):
            raise QueryError({path: "Expected a moment object."})
        kind = moment.get("type")
        if kind == "now":
            return self.now
        if kind == "fixed_utc":
            value = moment.get("value")
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise QueryError({f"{path}.value": "Not a valid datetime."}) from None
            if not parsed.tzinfo:  # as strict as close-mcp's grammar: an instant has an offset
                raise QueryError(
                    {f"{path}.value": "A fixed_utc moment needs a UTC offset (Z or +00:00)."}
                )
            try:
                return parsed.astimezone(UTC)
            except OverflowError:
                raise QueryError({f"{path}.value": "Date out of range."}) from None
        if kind == "fixed_local_date":
            try:
                day = datetime.combine(
                    date.fromisoformat(str(moment.get("value"))), datetime.min.time(), tzinfo=UTC
                )
            except ValueError:
                raise QueryError({f"{path}.value": "Not a valid date (YYYY-MM-DD)."}) from None
            return self._which(day - self.tz, moment.get("which", "start"), f"{path}.which")
        if kind == "offset":
            return self._offset(moment, path)
        if kind is None:
            raise QueryError({f"{path}.type": "Missing data for required field."})
        raise QueryError({f"{path}.type": f"Unknown moment type {kind!r}."})

    def _which(self, moment: datetime, which: Any, path: str) -> datetime:
        """The start or end of `moment`'s day, where days begin at midnight in the offset."""
        if which == "start":
            return _midnight(moment + self.tz) - self.tz
        if which == "end":
            return _midnight(moment + self.tz) - self.tz + timedelta(days=1)
        raise QueryError({path: "Must be 'start' or 'end'."})

    def _offset(self, moment: JSON, path: str) -> datetime:
        direction = moment.get("direction")
        if direction not in ("past", "future"):
            raise QueryError({f"{path}.direction": "Must be 'past' or 'future'."})
        base = self.moment(moment.get("moment"), f"{path}.moment")
        offset = moment.get("offset")
        if not isinstance(offset, dict):
            raise QueryError({f"{path}.offset": "Missing data for required field."})
        sign = -1 if direction == "past" else 1
        result = base
        for unit, amount in offset.items():
            if unit not in OFFSET_UNITS:
                raise QueryError({f"{path}.offset.{unit}": "Unknown unit."})
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise QueryError({f"{path}.offset.{unit}": "Must be a non-negative integer."})
            if unit in ("years", "months"):
                result = _add_months(result, sign * amount * (12 if unit == "years" else 1))
            else:
                result += sign * timedelta(**{unit: amount})
        which_day_end = moment.get("which_day_end")
        if which_day_end is None:
            return result
        if which_day_end not in ("start", "end"):
            raise QueryError({f"{path}.which_day_end": "Must be 'start' or 'end'."})
        if any(offset.get(unit) for unit in ("hours", "minutes", "seconds")):
            # Our reading, not documented: Close's UI sends day ends with whole days, and the
            # public scripts that send hours or minutes with `which_day_end` read them as
            # "the last N hours", so a span with a time part is not rounded to a day end.
            return result
        return self._which(result, which_day_end, f"{path}.which_day_end")


def _custom_spec(cf_id: str, cf_type: str, tz: timedelta = timedelta(0)) -> FieldSpec:
    def get(lead: Any) -> list[Any]:
        value = lead.custom.get(cf_id)
        values = value if isinstance(value, list) else _one(value)
        if cf_type == "date":  # a day, which starts at midnight in the request's offset
            return [d for d in (_day_start(str(v), tz) for v in values) if d is not None]
        return list(values)

    kind = {"text": "text", "number": "number", "date": "date", "choices": "choice"}.get(
        cf_type, "reference"
    )
    return FieldSpec(
        kind, get, USER_REFERENCE if cf_type == "user" else (), day_only=cf_type == "date"
    )


# -- sorting, selection, projection ----------------------------------------------------------


def check_sort(store: Store, sort: Any, path: str) -> list[tuple[FieldSpec, bool]]:
    """Validate `sort`; answer (field, descending) pairs."""
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise QueryError({path: "Must be a list."})
    keys = []
    compiler = Compiler(store, _EPOCH)  # sort fields never read the clock
    for i, item in enumerate(sort):
        if not isinstance(item, dict):
            raise QueryError({f"{path}.{i}": "Expected an object."})
        direction = item.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise QueryError({f"{path}.{i}.direction": "Must be 'asc' or 'desc'."})
        keys.append(
            (compiler.field(item.get("field"), f"{path}.{i}.field", "lead"), direction == "desc")
        )
    return keys


def _sort_value(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def sort_leads(leads: list[Lead], keys: list[tuple[FieldSpec, bool]]) -> list[Lead]:
    """Stable multi-key sort; leads without a value come last in either direction.

    Without keys, newest first (by `date_created`), a guess at Close's default order.
    """
    if not keys:
        keys = [(LEAD_FIELDS["date_created"], True)]
    ordered = sorted(leads, key=lambda lead: lead.id)
    for spec, desc in reversed(keys):
        # Each lead's value read once (a 100,000-lead walk sorts them all on every walk).
        present: list[tuple[Any, Lead]] = []
        missing: list[Lead] = []
        for lead in ordered:
            values = spec.get(lead)
            if values:
                present.append((_sort_value(values[0]), lead))
            else:
                missing.append(lead)
        present.sort(key=lambda pair: pair[0], reverse=desc)
        ordered = [lead for _, lead in present] + missing
    return ordered


def check_results_limit(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryError({path: "Must be a non-negative integer or null."})
    return value


def select(
    store: Store,
    tree: Any,
    results_limit: int | None,
    sort: Any,
    now: datetime,
    prefix: str = "query",
    sort_path: str = "sort",
    tz: timedelta = timedelta(0),
) -> list[Lead]:
    """The leads a query selects, sorted and capped, as a bulk job or a search sees them."""
    pred = Compiler(store, now, tz).node(tree, prefix, "lead")
    keys = check_sort(store, sort, sort_path)
    ids = candidate_ids(tree)
    if ids is None:
        candidates: Iterable[Lead] = store.leads.values()
    else:  # the leads named by id, looked up instead of testing every lead
        candidates = (store.leads[i] for i in ids if i in store.leads)
    matched = sort_leads([lead for lead in candidates if pred(lead)], keys)
    return matched if results_limit is None else matched[:results_limit]


def candidate_ids(tree: Any) -> set[str] | None:
    """Lead ids that include every match of an already compiled `tree`, or None (any lead).

    A tree that is (or is an `and` with) a plain condition on the lead's `id` can only match
    the leads it names; `select` then tests just those, so selecting 1000 leads by id costs
    1000 tests, not one per lead of the organization. Sorting makes the order irrelevant.
    """
    if not isinstance(tree, dict) or tree.get("negate"):
        return None
    if tree.get("type") == "and":
        found = [candidate_ids(q) for q in tree.get("queries") or []]
        sets = [s for s in found if s is not None]
        return set.intersection(*sets) if sets else None
    field, condition = tree.get("field"), tree.get("condition")
    if (
        tree.get("type") != "field_condition"
        or not isinstance(field, dict)
        or not isinstance(condition, dict)
        or field.get("type") != "regular_field"
        or field.get("object_type", "lead") != "lead"
        or field.get("field_name") != "id"
    ):
        return None
    values = condition.get("values" if condition.get("type") == "term" else "object_ids")
    if condition.get("type") not in ("term", "reference") or not isinstance(values, list):
        return None
    return {v for v in values if isinstance(v, str)}


def project(lead: Lead, fields: list[str] | None, store: Store) -> JSON:
    """A search hit: `__object_type` and id, or exactly the `_fields` asked (unknown: left out)."""
    if fields is None:
        return {"__object_type": "lead", "id": lead.id}
    full = lead.to_json(store, with_contacts="contacts" in fields)
    answer: JSON = {"__object_type": "lead"}
    for name in fields:
        if name in full:
            answer[name] = full[name]
        elif name.startswith("custom.") and name[7:] in store.custom_fields:
            answer[name] = None
    return answer
