"""Reading the token a Socket.IO client presents (docs/realtime.md, "Connecting")."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs


def presented_token(environ: dict[str, Any], auth: Any) -> str | None:
    """``auth.token``, else ``?token=``, else ``Authorization: Bearer``; None if absent.

    A value that is present but unusable (not a string, empty) is returned as
    an empty string so that it is refused as malformed, not treated as absent.
    """
    if isinstance(auth, dict) and "token" in auth:
        token = auth["token"]
        return token if isinstance(token, str) else ""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "token" in query:
        return str(query["token"][0])
    header = environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return None
