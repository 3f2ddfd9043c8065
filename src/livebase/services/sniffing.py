"""Content types from the bytes themselves, not from what a client claims."""

from __future__ import annotations

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"BM", 0, "image/bmp"),
    (b"ID3", 0, "audio/mpeg"),
    (b"OggS", 0, "audio/ogg"),
    (b"\x1a\x45\xdf\xa3", 0, "video/webm"),
    (b"ftyp", 4, "video/mp4"),
]
# Text whose claimed type is kept: an allow-list, because the types a browser
# runs are many (text/ecmascript, text/x-javascript, text/jscript, ... each one a
# script to <script src> from any site, nosniff notwithstanding; html, svg,
# xml, css). None of these runs or styles anything; other text is text/plain.
_TEXT_KEPT = frozenset({"text/plain", "text/csv", "text/markdown", "application/json"})
_BINARY = "application/octet-stream"
# Every type sniff() gives: what a stored row may be served as.
_SERVABLE = (
    frozenset({mimetype for _, _, mimetype in _SIGNATURES} | {"image/webp", "audio/wav", _BINARY})
    | _TEXT_KEPT
)


def sniff(head: bytes, claimed: str | None) -> str:
    """The content type of a file whose first bytes are ``head``."""
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if head[8:12] == b"WEBP" else "audio/wav"
    for signature, offset, mimetype in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return mimetype
    claim = (claimed or "").split(";")[0].strip().lower()
    if _looks_like_text(head):
        return claim if claim in _TEXT_KEPT else "text/plain"
    return _BINARY


def servable(mimetype: str | None) -> str:
    """The type to serve a stored file as: its own if sniff() could have given it.

    Rows stored before the allow-list may hold a claimed text type such as
    text/ecmascript; those are served as bytes to download.
    """
    return mimetype if mimetype in _SERVABLE else _BINARY


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True
