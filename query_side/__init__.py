"""The read side: Sanic REST API, live stream, and the built UI."""
