"""What every app shares and no app owns: errors, input bounds, request context, live events and
their websocket, pagination and parsing for the REST API, metrics, and the ASGI
lifespan registry. `core` imports no other app of the project."""
