"""The MCP door to EasyMemory: the tool registry (registry.py) that collects each app's
`mcp_tools` module, the server that serves the tools (server.py), its Streamable HTTP mount at
/mcp (http.py) and the stdio proxy to a remote server (stdio.py)."""
