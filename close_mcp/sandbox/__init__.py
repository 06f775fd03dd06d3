"""A local Close-compatible API: a seeded organization, real search, jobs that progress.

    sb = Sandbox(n_leads=200, clock=FakeClock())
    async with httpx.AsyncClient(transport=sb.transport(),
                                 base_url="http://sandbox/api/v1/",
                                 auth=(SANDBOX_API_KEY, "")) as http: ...

`sb.store` holds the data (`close_mcp.sandbox.store`), `sb.requests` every request received,
`sb.inject_faults` misbehaviour on demand, `sb.advance` moves a FakeClock. `serve` runs it
on loopback with uvicorn.
"""

from close_mcp.sandbox.core import SANDBOX_API_KEY, RecordedRequest, Sandbox
from close_mcp.sandbox.server import serve

__all__ = ["SANDBOX_API_KEY", "RecordedRequest", "Sandbox", "serve"]
