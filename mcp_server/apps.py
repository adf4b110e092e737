from django.apps import AppConfig


class McpServerConfig(AppConfig):
    # Not named `mcp`: that is the MCP SDK's package, which this app uses.
    name = "mcp_server"
    verbose_name = "MCP server"
