"""Write safety: the request and result types, the one pipeline every write takes (preview,
confirmation, recount, binding), the sender that sends once and audits, tokens, the audit log."""
