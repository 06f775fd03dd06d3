"""The state store: what replicas must share and restarts must keep.

Signed tokens need no shared state, but some facts must be shared or they do not hold:
a spent confirmation nonce (one token, one write, on every replica and after a restart),
short-lived locks (one revert per job, one restore per backup), the snapshots and backups
of the safety net with their revert records and restore journals, and the rate-limit
budget of one Close key. They live behind `StateStore`, a handful of atomic operations on
namespaced keys:

- `SQLiteStore` (the default): a file in the state directory beside the audit log; every
  process on the machine shares it, and it survives restarts. `":memory:"` for one process.
- `RedisStore`: `CLOSE_MCP_STORE=redis://host:port/db`, for replicas on several machines.

Keys expire when a `ttl_s` is given (nonces and locks with the token lifetime); documents
without one are kept until deleted.
"""

from close_mcp.errors import Busy
from close_mcp.store.base import StateStore, Update, held, is_held
from close_mcp.store.open import open_store

__all__ = ["Busy", "StateStore", "Update", "held", "is_held", "open_store"]
