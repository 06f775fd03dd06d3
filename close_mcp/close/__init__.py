"""Close's wire: the HTTP client, its pacing, names to ids, jobs, reading a selection's leads.

Nothing here knows about MCP; every layer above talks to Close through this one."""
