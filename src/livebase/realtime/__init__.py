"""The realtime layer: Socket.IO transport, rooms, and permission-aware fan-out."""
