"""The MCP door to EasyMemory: tools (registry.py, tools.py), the server that
serves them (server.py), its Streamable HTTP mount at /mcp (http.py) and the
stdio proxy to a remote server (proxy.py)."""
