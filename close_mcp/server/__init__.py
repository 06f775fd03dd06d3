"""The MCP surface: the server, its HTTP transport, resources, tool schemas, the runtime and
the tools themselves (`tools/`)."""
