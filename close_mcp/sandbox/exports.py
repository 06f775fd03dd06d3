"""Lead exports as Close documents them: a POST that checks its body and selects with the
evaluator, an export that is done after a while, and its gzip file behind a signed link."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from close_mcp.sandbox.errors import ApiError, BadRequest, found
from close_mcp.sandbox.lead_selection import check_results_limit, select
from close_mcp.sandbox.params import check_keys, check_params
from close_mcp.sandbox.routes import Call, Handler, narrow, page, unordered
from close_mcp.sandbox.store import JSON, Export, Lead, Opportunity, Store, from_epoch, iso

EXPORT_PATH: Final = "/sandbox-files/export/"  # where the sandbox serves finished exports
EXPORT_KEYS: Final = {
    "s_query", "results_limit", "sort", "format", "type", "date_format", "fields",
    "include_activities", "include_smart_fields", "include_addresses",
    "include_custom_objects", "send_done_email",
}  # fmt: skip
EXPORT_TYPES: Final = ("leads", "contacts", "lead_opps")
DATE_FORMATS: Final = ("original", "iso8601", "excel")


@dataclass
class Exports:
    """The handlers; an export's file is made when it is asked for, ready `job_speed` leads a
    clock-second later."""

    store: Store
    job_speed: float
    opportunity_json: Callable[[Opportunity], JSON]

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (r"export/", {"GET": self.exports}),
            (r"export/lead/", {"POST": self.create_export}),
            (r"export/(?P<id>[^/]+)/", {"GET": self.export}),
        ]

    def create_export(self, call: Call) -> JSON:
        data = check_keys(call.json, EXPORT_KEYS)
        errors: dict[str, str] = {}
        fmt, kind = data.get("format"), data.get("type")
        if fmt not in ("csv", "json"):
            errors["format"] = "Must be csv or json."
        if kind not in EXPORT_TYPES:
            errors["type"] = f"Must be one of: {', '.join(EXPORT_TYPES)}."
        if data.get("date_format") is not None and data["date_format"] not in DATE_FORMATS:
            errors["date_format"] = f"Must be one of: {', '.join(DATE_FORMATS)}."
        fields = data.get("fields")
        if fields is not None and (
            not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)
        ):
            errors["fields"] = "Must be a list of field names."
        for flag in ("include_activities", "include_smart_fields", "include_addresses",
                     "include_custom_objects", "send_done_email"):  # fmt: skip
            if flag in data and not isinstance(data[flag], bool):
                errors[flag] = "Must be a boolean."
        if data.get("include_activities") and (kind, fmt) != ("leads", "json"):
            errors["include_activities"] = "Only with type leads and format json."
        if errors:
            raise BadRequest(errors)
        results_limit = check_results_limit(data.get("results_limit"), "results_limit")
        tree = data.get("s_query") or {"type": "object_type", "object_type": "lead"}
        leads = select(
            self.store, tree, results_limit, data.get("sort"), from_epoch(call.now), "s_query",
            tz=call.tz,
        )  # fmt: skip
        content = gzip.compress(self._export_file(leads, str(fmt), str(kind), fields), mtime=0)
        export = Export(
            self.store.new_id("expo"), str(fmt), str(kind), dict(data), len(leads), content,
            self.store.new_id("tok"), self.store.me.id, from_epoch(call.now), call.now,
            call.now + 1.0 + len(leads) / self.job_speed,
        )  # fmt: skip
        self.store.exports[export.id] = export
        return self.export_json(export, call)

    def export_json(self, export: Export, call: Call) -> JSON:
        if call.now >= export.ready_at:
            status = "done"
        elif call.now >= export.started_at + 0.5:
            status = "in_progress"
        else:
            status = "created"
        url = None
        if status == "done":
            url = f"{call.base_url.rstrip('/')}{EXPORT_PATH}{export.id}/{export.token}/"
        return {
            "id": export.id,
            "status": status,
            "format": export.format,
            "type": export.type,
            "s_query": export.body.get("s_query"),
            "results_limit": export.body.get("results_limit"),
            "sort": export.body.get("sort") or [],
            "fields": export.body.get("fields"),
            "date_format": export.body.get("date_format") or "original",
            "send_done_email": export.body.get("send_done_email", True),
            "n_leads": export.n_leads,
            "download_url": url,
            "created_by": export.created_by,
            "date_created": iso(export.date_created),
            "date_updated": iso(export.date_created),
            "organization_id": self.store.org.id,
        }

    def exports(self, call: Call) -> JSON:
        check_params(call.query, {"_limit", "_skip", "_fields"})
        listed = [self.export_json(e, call) for e in self.store.exports.values()]
        return page(unordered(listed), call.query)

    def export(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        export = found(self.store.exports, call.params["id"], "Export")
        return narrow(self.export_json(export, call), call.query)

    def download(self, export_id: str, token: str, now: float) -> Export:
        """The finished export a download URL names (its token is the URL's secret)."""
        export = self.store.exports.get(export_id)
        if export is None or export.token != token or now < export.ready_at:
            raise ApiError(404, {"error": "No such file."})
        return export

    def _export_file(
        self, leads: list[Lead], fmt: str, kind: str, fields: list[str] | None
    ) -> bytes:
        rows: list[JSON] = []
        for lead in leads:
            lead_json = lead.to_json(self.store)
            opps = [
                self.opportunity_json(o)
                for o in self.store.opportunities.values()
                if o.lead_id == lead.id
            ]
            if kind == "leads":
                rows.append({**lead_json, "opportunities": opps})
            elif kind == "contacts":
                rows.extend({**c, "lead_name": lead.display_name} for c in lead_json["contacts"])
            else:
                rows.extend({**o, "lead_name": lead.display_name} for o in opps)
        if fields is not None:
            rows = [{f: row[f] for f in fields if f in row} for row in rows]
        if fmt == "json":
            return json.dumps(rows).encode()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue().encode()


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value
