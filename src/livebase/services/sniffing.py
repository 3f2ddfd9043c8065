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
_TEXT_CLAIMS = {"application/json", "text/csv", "text/markdown", "application/xml"}
# Types a browser would run as active content from our origin: never trusted from a claim.
_ACTIVE = {"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript"}


def sniff(head: bytes, claimed: str | None) -> str:
    """The content type of a file whose first bytes are ``head``."""
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if head[8:12] == b"WEBP" else "audio/wav"
    for signature, offset, mimetype in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return mimetype
    claim = (claimed or "").split(";")[0].strip().lower()
    if _looks_like_text(head):
        if claim in _TEXT_CLAIMS or (claim.startswith("text/") and claim not in _ACTIVE):
            return claim
        return "text/plain"
    return "application/octet-stream"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True
