"""Business rules. Nothing here imports FastAPI, Starlette or Socket.IO."""
