"""Files the sandbox serves itself, so demo customers can send real media without any outside host:
``/_sandbox/media/{name}``, and ``/_sandbox/store/{id}/?filename={name}`` shaped like Wazzup's store
links (what the helpdesk downloads and keeps, wazzup_plugin/media). Built in code: nothing to ship,
nothing to fetch."""

from __future__ import annotations

import struct
import zlib

import falcon


def png(width: int = 160, height: int = 120) -> bytes:
    """A small gradient picture (a parcel-brown box on teal), as a valid PNG."""
    rows = []
    for y in range(height):
        row = bytearray([0])                       # filter type 0 for each scanline
        for x in range(width):
            inside = width * 0.3 < x < width * 0.7 and height * 0.3 < y < height * 0.75
            row += bytes((181, 134, 84) if inside else (0, 128 + y // 2, 128 + x // 4))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def pdf(text: str = "Invoice 1042 - sandbox") -> bytes:
    """A one-page PDF saying ``text``."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A short quiet tone (a voice note's stand-in), as a valid 8-bit mono WAV."""
    samples = bytes(128 + (8 if (i // 10) % 2 else -8) for i in range(int(seconds * rate)))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(samples)) + samples)


FILES = {"photo.png": ("image/png", png), "invoice.pdf": ("application/pdf", pdf)}
# The store's files by extension: any name with one of these is served (the link's own name kept).
STORE_TYPES = {"png": ("image/png", png), "pdf": ("application/pdf", pdf), "wav": ("audio/wav", wav)}


class MediaResource:
    def __init__(self):
        self._cache: dict[str, bytes] = {}

    def on_get(self, req, resp, name):
        if name not in FILES:
            raise falcon.HTTPNotFound(description=f"the sandbox serves {', '.join(FILES)}")
        content_type, build = FILES[name]
        if name not in self._cache:
            self._cache[name] = build()
        resp.content_type = content_type
        resp.data = self._cache[name]


class StoreResource:
    """``GET /_sandbox/store/{id}/?filename=photo.png``: like a link into Wazzup's store, whatever the id."""

    def __init__(self):
        self._cache: dict[str, bytes] = {}

    def on_get(self, req, resp, item_id):
        name = req.get_param("filename") or ""
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in STORE_TYPES:
            raise falcon.HTTPNotFound(description=f"the sandbox's store serves ?filename= ending in "
                                                  f"{', '.join('.' + e for e in STORE_TYPES)}")
        content_type, build = STORE_TYPES[ext]
        if ext not in self._cache:
            self._cache[ext] = build()
        resp.content_type = content_type
        resp.data = self._cache[ext]


def store_url(sandbox_url: str, name: str, item_id: str | None = None) -> str:
    """A store link to a file named ``name`` (a fresh id each time, as Wazzup's links have)."""
    import uuid

    return f"{sandbox_url}/_sandbox/store/{item_id or uuid.uuid4().hex}/?filename={name}"

