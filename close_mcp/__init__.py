"""close-mcp: Close CRM bulk actions for AI assistants, previewed and confirmed."""

__version__ = "0.1.0"
