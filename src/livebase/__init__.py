"""livebase: a self-hosted backend-as-a-service whose heart is realtime."""

__version__ = "0.1.0"
