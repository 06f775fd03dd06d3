"""Pipelines, opportunity statuses and opportunities as Close documents them: the list's
documented filters and aggregates, and an update's checks and event."""

from __future__ import annotations

from typing import Any, Final

from close_mcp.sandbox.errors import BadRequest, found
from close_mcp.sandbox.events import Logged
from close_mcp.sandbox.params import (
    DATE_OPS,
    check_keys,
    check_params,
    date_filters,
    date_value,
    flag,
    order,
    values_in,
    when,
)
from close_mcp.sandbox.routes import Call, Handler, narrow, page, unordered
from close_mcp.sandbox.store import JSON, Contact, Lead, Opportunity, from_epoch, iso

# The documented filters of GET /opportunity/ (the OpenAPI file's parameters).
OPP_PARAMS: Final = {
    "_limit", "_skip", "_fields", "lead_id", "organization_id", "user_id", "user_id__in",
    "status_id", "status_id__in", "status_type", "status_type__in", "status_label",
    "status_label__in", "value_period", "value_period__in", "_order_by", "is_stalled",
    *(f"{d}{op}" for d in ("date_won", "date_created", "date_updated") for op in DATE_OPS),
}  # fmt: skip
OPP_ORDER: Final = ("date_won", "date_updated", "date_created", "confidence", "value")
OPP_WRITABLE: Final = {
    "status_id", "user_id", "value", "value_period", "value_currency", "confidence", "note",
    "date_won", "contact_id",
}  # fmt: skip
VALUE_PERIODS: Final = ("one_time", "monthly", "annual")


class Opportunities(Logged):
    """The handlers; an update is logged in `log`."""

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (r"pipeline/", {"GET": self.pipelines}),
            (r"status/opportunity/", {"GET": self.opportunity_statuses}),
            (r"opportunity/", {"GET": self.opportunities}),
            (
                r"opportunity/(?P<id>[^/]+)/",
                {"GET": self.opportunity, "PUT": self.update_opportunity},
            ),
        ]

    def _status_json(self, status_id: str) -> JSON:
        status = self.store.opportunity_statuses[status_id]
        return {
            "id": status.id,
            "label": status.label,
            "type": status.type,
            "pipeline_id": status.pipeline_id,
            "organization_id": self.store.org.id,
        }

    def pipelines(self, call: Call) -> JSON:
        check_params(call.query, {"_limit", "_skip", "_fields"})
        org = self.store.org.id
        items = [
            {
                "id": p.id,
                "name": p.name,
                "organization_id": org,
                "statuses": [
                    self._status_json(s.id)
                    for s in self.store.opportunity_statuses.values()
                    if s.pipeline_id == p.id
                ],
            }
            for p in self.store.pipelines.values()
        ]
        return page(items, call.query)

    def opportunity_statuses(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        return {
            "data": [
                narrow(self._status_json(s), call.query) for s in self.store.opportunity_statuses
            ]
        }

    # -- opportunities -------------------------------------------------------------------

    def opportunity_json(self, opp: Opportunity, lead: Lead | None = None) -> JSON:
        """`lead`: the opportunity's lead when the store no longer holds it (being deleted)."""
        store = self.store
        status = store.opportunity_statuses[opp.status_id]
        pipeline = store.pipelines[status.pipeline_id]
        lead = lead or store.leads.get(opp.lead_id)
        user = store.users.get(opp.user_id)
        contact = contact_of(lead, opp.contact_id)
        annual = (
            None if opp.value is None else opp.value * (12 if opp.value_period == "monthly" else 1)
        )
        expected = None if opp.value is None else opp.value * opp.confidence // 100
        names = {u.id: u.full_name for u in store.users.values()}
        return {
            "id": opp.id,
            "lead_id": opp.lead_id,
            "lead_name": lead.display_name if lead else None,
            "status_id": opp.status_id,
            "status_label": status.label,
            "status_display_name": status.label,
            "status_type": status.type,
            "pipeline_id": pipeline.id,
            "pipeline_name": pipeline.name,
            "user_id": opp.user_id,
            "user_name": user.full_name if user else None,
            "contact_id": opp.contact_id,
            "contact_name": contact.name if contact else None,
            "value": opp.value,
            "value_period": opp.value_period,
            "value_currency": "USD",
            "value_formatted": _formatted(opp.value, opp.value_period),
            "expected_value": expected,
            "annualized_value": annual,
            "annualized_expected_value": None if annual is None else annual * opp.confidence // 100,
            "confidence": opp.confidence,
            "note": opp.note,
            "date_won": opp.date_won,
            "date_lost": iso(opp.date_lost) if opp.date_lost else None,
            "date_created": iso(opp.date_created),
            "date_updated": iso(opp.date_updated),
            "created_by": opp.created_by,
            "created_by_name": names.get(opp.created_by or ""),
            "updated_by": opp.updated_by,
            "updated_by_name": names.get(opp.updated_by or ""),
            "is_stalled": False,
            "attachments": [],
            "integration_links": [],
            "organization_id": store.org.id,
        }

    def opportunities(self, call: Call) -> JSON:
        query = call.query
        check_params(query, OPP_PARAMS)
        statuses = self.store.opportunity_statuses
        wanted = {
            "user_id": values_in(query, "user_id"),
            "status_id": values_in(query, "status_id"),
            "status_type": values_in(query, "status_type"),
            "status_label": values_in(query, "status_label"),
            "value_period": values_in(query, "value_period"),
        }
        stalled = flag(query, "is_stalled")

        def field(opp: Opportunity, name: str) -> Any:
            if name in ("status_type", "status_label"):
                status = statuses[opp.status_id]
                return status.type if name == "status_type" else status.label
            if name == "date_won":
                return None if opp.date_won is None else when(opp.date_won, name)
            return getattr(opp, name)

        dated = date_filters(query, ("date_won", "date_created", "date_updated"), field)
        matches = [
            o
            for o in self.store.opportunities.values()
            if query.get("lead_id") in (None, o.lead_id)
            and all(values is None or field(o, k) in values for k, values in wanted.items())
            and stalled in (None, False)
            and dated(o)
        ]
        if query.get("_order_by") is not None:
            ordered = order(matches, query["_order_by"], OPP_ORDER, field)
        else:
            by_id = {o.id: o for o in matches}
            ordered = [by_id[i["id"]] for i in unordered([{"id": o.id} for o in matches])]
        answer = page(ordered, query, self.opportunity_json)
        answer.update(_aggregates(matches))
        return answer

    def opportunity(self, call: Call) -> JSON:
        check_params(call.query, {"_fields"})
        opp = found(self.store.opportunities, call.params["id"], "Opportunity")
        return narrow(self.opportunity_json(opp), call.query)

    def update_opportunity(self, call: Call) -> JSON:
        opp = found(self.store.opportunities, call.params["id"], "Opportunity")
        data = check_keys(call.json, OPP_WRITABLE)
        before = self.opportunity_json(opp)
        changes: JSON = {}
        if "status_id" in data:
            if data["status_id"] not in self.store.opportunity_statuses:
                raise BadRequest({"status_id": "Opportunity status not found."})
            changes["status_id"] = data["status_id"]
        if "user_id" in data:
            if data["user_id"] not in self.store.users:
                raise BadRequest({"user_id": "User not found."})
            changes["user_id"] = data["user_id"]
        if "value" in data:
            value = data["value"]
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise BadRequest({"value": "Must be a non-negative integer (cents) or null."})
            changes["value"] = value
        if "value_period" in data:
            if data["value_period"] not in VALUE_PERIODS:
                raise BadRequest({"value_period": f"Must be one of: {', '.join(VALUE_PERIODS)}."})
            changes["value_period"] = data["value_period"]
        if "value_currency" in data and data["value_currency"] != "USD":
            raise BadRequest({"value_currency": "The organization's currency is USD."})
        if "confidence" in data:
            confidence = data["confidence"]
            if (
                not isinstance(confidence, int)
                or isinstance(confidence, bool)
                or not 0 <= confidence <= 100
            ):
                raise BadRequest({"confidence": "Must be an integer from 0 to 100."})
            changes["confidence"] = confidence
        if "note" in data:
            changes["note"] = str(data["note"] or "")
        if "date_won" in data:
            changes["date_won"] = date_value(data["date_won"], "date_won")
        if "contact_id" in data:
            contact = self.store.contact(data["contact_id"]) if data["contact_id"] else None
            if data["contact_id"] is not None and (
                contact is None or contact.lead_id != opp.lead_id
            ):
                raise BadRequest({"contact_id": "Contact not found on this opportunity's lead."})
            changes["contact_id"] = data["contact_id"]
        now = from_epoch(call.now)
        for key, value in changes.items():
            setattr(opp, key, value)
        status = self.store.opportunity_statuses[opp.status_id]
        if "status_id" in changes:
            # Close: a won status sets date_won to today (the X-TZ-Offset day) when neither
            # the opportunity nor the request has one; leaving won does not clear it.
            if status.type == "won" and opp.date_won is None:
                opp.date_won = (now + call.tz).date().isoformat()
            opp.date_lost = now if status.type == "lost" else None
        opp.touch(now, self.store.me.id)
        after = self.opportunity_json(opp)
        changed = sorted(k for k in after if after[k] != before.get(k) and k != "date_updated")
        if changed:
            self.log.emit(
                "opportunity", opp.id, opp.lead_id, "updated", now, data=after,
                previous_data={k: before.get(k) for k in changed}, changed_fields=changed,
            )  # fmt: skip
        return after


def contact_of(lead: Lead | None, contact_id: str | None) -> Contact | None:
    """The contact on this lead (looking on the lead, not through every lead: a bulk delete
    renders each deleted lead's opportunities)."""
    if lead is None or contact_id is None:
        return None
    return next((c for c in lead.contacts if c.id == contact_id), None)


def _formatted(value: int | None, period: str) -> str | None:
    """`$3,000` for 300000 cents, `$50 monthly` for a monthly 5000 (Close's examples)."""
    if value is None:
        return None
    suffix = {"monthly": " monthly", "annual": " annual"}.get(period, "")
    return f"${value / 100:,.0f}{suffix}"


def _aggregates(opps: list[Opportunity]) -> JSON:
    """The aggregate values every opportunity list carries (over all matches)."""
    answer: JSON = {"total_results": len(opps)}
    counts = {p: 0 for p in VALUE_PERIODS}
    totals = {p: 0 for p in VALUE_PERIODS}
    expected = {p: 0 for p in VALUE_PERIODS}
    for opp in opps:
        counts[opp.value_period] += 1
        totals[opp.value_period] += opp.value or 0
        expected[opp.value_period] += (opp.value or 0) * opp.confidence // 100
    answer["count_by_value_period"] = counts
    for period in VALUE_PERIODS:
        answer[f"total_value_{period}"] = totals[period]
        answer[f"expected_value_{period}"] = expected[period]
    answer["total_value_annualized"] = (
        totals["one_time"] + totals["annual"] + 12 * totals["monthly"]
    )
    answer["expected_value_annualized"] = (
        expected["one_time"] + expected["annual"] + 12 * expected["monthly"]
    )
    return answer
