"""The organization's named things (statuses, custom fields, templates, ...), looked up by name.

Assistants speak in names ("Qualified", "Industry"); Close wants ids. A `Catalog` fetches each
kind of thing at most once and keeps it for its own life only: the server makes one per tool
call, so a status renamed in Close is seen on the next call. Resolution takes a name or an id;
a name that matches nothing or several things is an error that lists the closest names, so
the assistant can correct itself instead of guessing.

Custom fields come from `/custom_field_schema/lead/`, which lists every field leads can hold,
regular and shared; `/custom_field/lead/` lists the regular ones only, so a shared field would
be missing from filters, edits, snapshots and delete backups.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, get_args

import anyio
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from close_mcp.close.client import CloseClient
from close_mcp.errors import AmbiguousName, CloseAPIError, MalformedResponse, NameNotFound

Kind = Literal[
    "lead_statuses",
    "custom_fields",
    "email_templates",
    "sequences",
    "smart_views",
    "email_accounts",
    "users",
    "opportunity_statuses",
]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)


# -- models: only the fields this project uses; Close sends more -------------------------


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Model(_Base):
    """Anything with an id that a name can resolve to."""

    id: str


class Status(_Model):
    label: str

    @property
    def name(self) -> str:
        return self.label


class CustomField(_Model):
    name: str
    type: str
    accepts_multiple_values: bool = False
    choices: list[str] = Field(default_factory=list)
    is_shared: bool = False  # a shared custom field (the schema says; the field is used alike)

    @field_validator("is_shared", mode="before")
    @classmethod
    def _not_shared_if_null(cls, value: object) -> object:
        return False if value is None else value

    @field_validator("accepts_multiple_values", mode="before")
    @classmethod
    def _false_if_null(cls, value: object) -> object:
        return False if value is None else value

    @field_validator("choices", mode="before")
    @classmethod
    def _empty_if_null(cls, value: object) -> object:
        return [] if value is None else value


class Template(_Model):
    name: str
    subject: str = ""
    body: str | None = None
    is_archived: bool = False


class Sequence(_Model):
    name: str
    status: str | None = None


class SmartView(_Model):
    """A saved search, with Close's `{query, results_limit, sort}` wrapper taken apart."""

    name: str
    type: str | None = None
    query: dict[str, Any] | None = None
    results_limit: int | None = None
    sort: list[dict[str, Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # Close's view also has `query`: the old text form, null for views made with an
        # s_query. Only a tree already unwrapped (a dict) is taken as the query.
        if not isinstance(data, dict) or isinstance(data.get("query"), dict):
            return data
        stored = data.get("s_query")
        out = {k: v for k, v in data.items() if k not in ("s_query", "query")}
        if isinstance(stored, dict) and isinstance(stored.get("query"), dict):
            out["query"] = stored["query"]
            out.setdefault("results_limit", stored.get("results_limit"))
            out.setdefault("sort", stored.get("sort") or None)
        else:  # already a bare tree (older views, or another client's shape)
            out["query"] = stored
        return out


class Identity(_Base):
    email: str
    name: str = ""


class EmailAccount(_Model):
    """A connected account. Close lists every kind (zoom, calendars) under one id prefix;
    only one with an identity to send as is an email account."""

    identities: list[Identity] = Field(default_factory=list)
    user_id: str | None = None
    kind: str | None = Field(default=None, alias="_type")

    @field_validator("identities", mode="before")
    @classmethod
    def _empty_if_null(cls, value: object) -> object:
        return [] if value is None else value

    @property
    def name(self) -> str:
        return self.identities[0].email if self.identities else self.id

    @property
    def sends_email(self) -> bool:
        return bool(self.identities) and self.kind not in NOT_EMAIL_KINDS


class User(_Model):
    email: str = ""
    name: str = ""

    @model_validator(mode="before")
    @classmethod
    def _full_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            parts = [data.get("first_name") or "", data.get("last_name") or ""]
            data = {**data, "name": " ".join(p for p in parts if p)}
        return data


T = TypeVar("T", bound=_Model)
T_co = TypeVar("T_co", bound=_Model, covariant=True)
# Connected account kinds that never send email, whatever else they carry.
NOT_EMAIL_KINDS: Final = frozenset({"zoom", "calendly"})
# How a kind is listed: "paged" follows `_skip`/`_limit` over `{data, has_more}`; otherwise one
# GET whose answer holds the items under that key (`{data}` statuses, `{fields}` the schema).
Listing = Literal["paged", "data", "fields"]


@dataclass(frozen=True)
class _KindSpec(Generic[T]):
    kind: Kind
    one: str  # "lead status"
    many: str  # "lead statuses"
    path: str
    listing: Listing
    prefix: str
    model: type[T]
    names: Callable[[T], list[str]]
    keep: Callable[[T], bool] = lambda item: True  # the items of this kind in Close's list
    # The listing holds every item there is: an id missing from it is unknown, not read from
    # `<path><id>/` as an archived template or another user's view is.
    complete: bool = False


def _account_names(account: EmailAccount) -> list[str]:
    return [i.email for i in account.identities] + [i.name for i in account.identities if i.name]


_STATUSES: Final = _KindSpec(
    "lead_statuses", "lead status", "lead statuses", "status/lead/", "data", "stat_", Status,
    lambda s: [s.label],
)  # fmt: skip
CUSTOM_FIELD_SCHEMA_PATH: Final = "custom_field_schema/lead/"
_CUSTOM_FIELDS: Final = _KindSpec(
    "custom_fields", "custom field", "custom fields", CUSTOM_FIELD_SCHEMA_PATH, "fields", "cf_",
    CustomField, lambda f: [f.name], complete=True,
)  # fmt: skip
_TEMPLATES: Final = _KindSpec(
    "email_templates", "email template", "email templates", "email_template/", "paged", "tmpl_",
    Template, lambda t: [t.name],
)  # fmt: skip
_SEQUENCES: Final = _KindSpec(
    "sequences", "sequence", "sequences", "sequence/", "paged", "seq_", Sequence,
    lambda s: [s.name],
)  # fmt: skip
_SMART_VIEWS: Final = _KindSpec(
    "smart_views", "smart view", "smart views", "saved_search/", "paged", "save_", SmartView,
    lambda v: [v.name],
)  # fmt: skip
_EMAIL_ACCOUNTS: Final = _KindSpec(
    "email_accounts", "email account", "email accounts", "connected_account/", "paged",
    "emailacct_", EmailAccount, _account_names, lambda account: account.sends_email,
)  # fmt: skip
_USERS: Final = _KindSpec(
    "users", "user", "users", "user/", "paged", "user_", User, lambda u: [u.name, u.email]
)
# Opportunity statuses share lead statuses' `stat_` prefix: the listing is complete, so a
# lead status's id is unknown here rather than fetched as an opportunity status.
_OPPORTUNITY_STATUSES: Final = _KindSpec(
    "opportunity_statuses", "opportunity status", "opportunity statuses", "status/opportunity/",
    "data", "stat_", Status, lambda s: [s.label], complete=True,
)  # fmt: skip


def normalize_name(name: str) -> str:
    """Case and spacing do not make two names different: `' Closed  won'` == `'closed won'`."""
    return " ".join(name.split()).casefold()


class _Listing(Generic[T]):
    """`catalog.users()`: every item of one kind, fetched at most once per catalog."""

    def __init__(self, spec: _KindSpec[T]) -> None:
        self._spec = spec

    def __get__(self, catalog: Catalog, owner: object = None) -> Callable[[], Awaitable[list[T]]]:
        return partial(catalog._list, self._spec)


class _Resolve(Protocol[T_co]):
    def __call__(self, name_or_id: str, *, path: str | None = None) -> Awaitable[T_co]: ...


class _Resolver(Generic[T]):
    """`catalog.resolve_user(name_or_id, path=...)`: the one item of a kind a name or id means."""

    def __init__(self, spec: _KindSpec[T]) -> None:
        self._spec = spec

    def __get__(self, catalog: Catalog, owner: object = None) -> _Resolve[T]:
        spec = self._spec

        def resolve(name_or_id: str, *, path: str | None = None) -> Awaitable[T]:
            return catalog._resolve(spec, name_or_id, path)

        return resolve


class Catalog:
    """Lookups for one tool call: each kind is fetched at most once, concurrent callers share it."""

    def __init__(self, client: CloseClient) -> None:
        self._client = client
        self._cache: dict[Kind, list[Any]] = {}
        self._locks: dict[Kind, anyio.Lock] = {}
        self._me_id: str | None = None

    # -- per kind: its listing, and its resolution of a name or id (`path=` names the argument
    # at fault in the error); an email account also resolves by an identity's address or
    # sender name, a user by full name or email address.
    lead_statuses, resolve_status = _Listing(_STATUSES), _Resolver(_STATUSES)
    custom_fields, resolve_custom_field = _Listing(_CUSTOM_FIELDS), _Resolver(_CUSTOM_FIELDS)
    email_templates, resolve_template = _Listing(_TEMPLATES), _Resolver(_TEMPLATES)
    sequences, resolve_sequence = _Listing(_SEQUENCES), _Resolver(_SEQUENCES)
    smart_views, resolve_smart_view = _Listing(_SMART_VIEWS), _Resolver(_SMART_VIEWS)
    email_accounts, resolve_email_account = _Listing(_EMAIL_ACCOUNTS), _Resolver(_EMAIL_ACCOUNTS)
    users, resolve_user = _Listing(_USERS), _Resolver(_USERS)
    opportunity_statuses = _Listing(_OPPORTUNITY_STATUSES)
    resolve_opportunity_status = _Resolver(_OPPORTUNITY_STATUSES)

    async def me_id(self) -> str:
        """The id of the user the key (or OAuth token) acts as, from `GET /me/`."""
        if self._me_id is None:
            answer = await self._client.get("me/")
            user_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(user_id, str) or not user_id:
                raise MalformedResponse(
                    "Close's answer about the current user had no id.", method="GET", path="me/"
                )
            self._me_id = user_id
        return self._me_id

    async def own_email_accounts(self) -> list[EmailAccount]:
        """The email accounts the calling user connected: a colleague's are listed by
        Close too, but are not theirs to send as."""
        me = await self.me_id()
        return [a for a in await self.email_accounts() if a.user_id == me]

    async def entries(self, kind: Kind) -> list[tuple[str, str]]:
        """`(id, name)` of every item of a kind, for listing them to an assistant."""
        spec: _KindSpec[Any] = _SPECS[kind]
        return [(item.id, spec.names(item)[0]) for item in await self._list(spec)]

    # -- internals ---------------------------------------------------------------------

    async def _list(self, spec: _KindSpec[T]) -> list[T]:
        lock = self._locks.setdefault(spec.kind, anyio.Lock())
        async with lock:
            if spec.kind not in self._cache:
                if spec.listing == "paged":
                    raw = await self._client.list_all(spec.path)
                else:
                    raw = _listed(spec, await self._client.get(spec.path))
                parsed = [_parse(spec, item) for item in raw]
                self._cache[spec.kind] = [item for item in parsed if spec.keep(item)]
            items: list[T] = self._cache[spec.kind]
            return items

    async def _resolve(self, spec: _KindSpec[T], name_or_id: str, path: str | None) -> T:
        """`path` names the argument at fault in the error, so callers need not re-wrap it."""
        query = name_or_id.strip()
        items = await self._list(spec)
        if query.startswith(spec.prefix):
            for item in items:
                if item.id == query:
                    return item
            return await self._fetch_unlisted(spec, query, path)
        exact = _distinct([item for item in items if query in spec.names(item)])
        if not exact:
            wanted = normalize_name(query)
            exact = _distinct(
                [i for i in items if wanted in (normalize_name(n) for n in spec.names(i))]
            )
        if len(exact) == 1:
            return exact[0]
        if exact:
            ids = [item.id for item in exact]
            raise AmbiguousName(
                f"Several {spec.many} are named {query!r}: {', '.join(ids)}. Pass the id instead.",
                kind=spec.kind,
                query=query,
                ids=ids,
                path=path,
            )
        closest = _closest(spec, items, query)
        raise NameNotFound(
            f'No {spec.one} named {query!r}.{closest} Use lookup(kind="{spec.kind}") to list them.',
            kind=spec.kind,
            query=query,
            path=path,
            quotes_crm_text=bool(closest),
        )

    async def _fetch_unlisted(self, spec: _KindSpec[T], item_id: str, path: str | None) -> T:
        """An id not in the listing (an archived template, another user's view): ask Close."""
        raw = None
        try:
            if not spec.complete:
                raw = await self._client.get(f"{spec.path}{item_id}/")
        except CloseAPIError as exc:
            if exc.status not in (400, 404, 405):
                raise
        if (
            not isinstance(raw, dict)
            or raw.get("id") != item_id
            or not spec.keep(_parse(spec, raw))
        ):
            raise NameNotFound(
                f"No {spec.one} has the id {item_id!r}. "
                f'Use lookup(kind="{spec.kind}") to list them.',
                kind=spec.kind,
                query=item_id,
                path=path,
            )
        item = _parse(spec, raw)
        self._cache[spec.kind] = [*self._cache[spec.kind], item]
        return item


_SPECS: Final[dict[Kind, _KindSpec[Any]]] = {
    spec.kind: spec
    for spec in (
        _STATUSES,
        _CUSTOM_FIELDS,
        _TEMPLATES,
        _SEQUENCES,
        _SMART_VIEWS,
        _EMAIL_ACCOUNTS,
        _USERS,
        _OPPORTUNITY_STATUSES,
    )
}


def _listed(spec: _KindSpec[T], answer: Any) -> list[Any]:
    """The items of a one-GET listing; an answer without its list is Close's fault, said so."""
    items = answer.get(spec.listing) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise MalformedResponse(
            f"Close's list of {spec.many} had no {spec.listing!r} list.",
            method="GET",
            path=spec.path,
        )
    return items


def _parse(spec: _KindSpec[T], raw: Any) -> T:
    """One listed item; an answer not shaped as Close documents it is Close's fault, said so."""
    try:
        return spec.model.model_validate(raw)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "item"
        raise MalformedResponse(
            f"Close's list of {spec.many} had an item this server cannot read ({where}: "
            f"{exc.errors()[0]['msg']}).",
            method="GET",
            path=spec.path,
        ) from None


def _distinct(items: list[T]) -> list[T]:
    seen: set[str] = set()
    out: list[T] = []
    for item in items:
        item_id: str = item.id
        if item_id not in seen:
            seen.add(item_id)
            out.append(item)
    return out


def _closest(spec: _KindSpec[T], items: list[T], query: str) -> str:
    """` Closest: 'Qualified' (stat_1), ...` over case-folded names; empty when none is close."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        for name in spec.names(item):
            if name:
                by_name.setdefault(normalize_name(name), []).append((name, item.id))
    matches = difflib.get_close_matches(normalize_name(query), list(by_name), n=5, cutoff=0.6)
    shown = [f"{name!r} ({item_id})" for key in matches for name, item_id in by_name[key]][:5]
    return f" Closest: {', '.join(shown)}." if shown else ""
