"""How livebase processes reach each other: :class:`PubSub` and its implementations.

``base`` is the interface; ``memory`` (one process, or several nodes inside
one process sharing a :class:`memory.Hub`) and ``redis`` (a real cluster)
each import only the base.
"""
