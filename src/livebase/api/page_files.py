"""The files of a page livebase serves as they are (the plain examples, the inspector).

Such a page is four files, and only these are served: no directory listing,
no path taken from the request.
"""

from __future__ import annotations

VENDORED_CLIENT = "vendor/socket.io.min.js"  # copied from the npm package by make demo-assets

PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    VENDORED_CLIENT: "text/javascript; charset=utf-8",
}
