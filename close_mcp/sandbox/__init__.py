"""A local Close-compatible API: a seeded organization, a real `s_query` evaluator, jobs that run.

    sb = Sandbox(n_leads=200, clock=FakeClock())
    async with httpx.AsyncClient(transport=sb.transport(), base_url="http://sandbox/api/v1/",
                                 auth=(SANDBOX_API_KEY, "")) as http: ...

- `sb.store` (`store.Store`) holds the data as dataclasses keyed by id: `leads` (with their
  `contacts`; `Lead.custom` maps `cf_` id -> value, a list for multi-value fields), `statuses`,
  `custom_fields` (one shared: "Region", listed by `/custom_field_schema/lead/` and not by
  `/custom_field/lead/`, as in Close), `templates`, `sequences`, `email_accounts`, `users`,
  `saved_searches`, `jobs`, `subscriptions`, `emails` (email activities, as Close JSON
  dicts), and the CRM objects of `crm`: `pipelines`, `opportunity_statuses`,
  `opportunities`, `tasks`, `events` (the event log) and `exports`.
- `sb.requests` logs every request received (`RecordedRequest`), rejected ones included.
- `Sandbox(drift=NAME)` answers one endpoint with a deliberately changed shape (`drift`), so
  `close-mcp check` can be seen to catch it.
- `sb.inject_faults` misbehaves on demand (`faults`; `sb.faults_served` counts the faults
  served, by kind), `sb.advance` moves a FakeClock.
- Jobs (`bulk_jobs`): `created` 0.5 s, `loading` to 1 s (counts null), then `processing` at
  `job_speed` objects a clock-second, applying effects as they go, then `done`.
- Choices where Close is silent: a path without its trailing slash gets a 308 to the slashed
  path; `count.total` is the number of matches capped by `results_limit`; searches without
  `sort` list the newest leads first.
- Local dates (`fixed_local_date`, day ends, date custom fields) are days in the offset of the
  request's `X-TZ-Offset` header (hours, `-4` or `5.5`), UTC without one; a bulk job keeps
  the offset it was created with.

`serve` runs a sandbox on loopback with uvicorn.
"""

from close_mcp.sandbox.core import SANDBOX_API_KEY, RecordedRequest, Sandbox
from close_mcp.sandbox.server import serve

__all__ = ["SANDBOX_API_KEY", "RecordedRequest", "Sandbox", "serve"]
