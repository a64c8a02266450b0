"""What an agent's uploaded file may be: its type (by extension), its size per messenger, its name.

One table for the upload route, the public file route and the send route (and the agent UI keeps the
same lists: wazzup_plugin/static/wazzup24.js ``FILE_RULES``). Wazzup takes a file only as a public URL
that it downloads at once (reference/wazzup-api-v3.md §3.1/§3.2): at most 10 MB through the API,
photos at most 5 MB on WhatsApp Business (WABA) and Telegram.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from wazzup_plugin.text_limits import WABA_TRANSPORT

MB = 1000 * 1000   # decimal: Wazzup's "10 MB" read the cautious way
MAX_FILE_BYTES = 10 * MB
MAX_PHOTO_BYTES = 5 * MB  # WABA and Telegram photos (MESSAGES_CONTENT_SIZE_EXCEEDED_WABA/_TELEGRAM)
MAX_NAME = 500            # the host's messages.content_name

# Extension -> MIME type, by the message type Wazzup shows. Only these are taken: an uploaded file is
# served from the helpdesk's own origin, so nothing a browser would run (HTML, SVG, XML) may be one.
BY_KIND: dict[str, dict[str, str]] = {
    "image": {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
              "webp": "image/webp"},
    "video": {"mp4": "video/mp4", "3gp": "video/3gpp", "mov": "video/quicktime"},
    "audio": {"mp3": "audio/mpeg", "ogg": "audio/ogg", "opus": "audio/opus", "m4a": "audio/mp4", "aac": "audio/aac",
              "wav": "audio/wav", "amr": "audio/amr"},
    "document": {
        "pdf": "application/pdf", "doc": "application/msword",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls": "application/vnd.ms-excel",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt": "application/vnd.ms-powerpoint",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "txt": "text/plain", "csv": "text/csv", "rtf": "application/rtf",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "zip": "application/zip", "rar": "application/vnd.rar", "7z": "application/x-7z-compressed"},
}
MIME_BY_EXTENSION = {ext: mime for table in BY_KIND.values() for ext, mime in table.items()}
ALLOWED = ", ".join(sorted(MIME_BY_EXTENSION))
# Declared types refused whatever the extension says: a browser runs them.
ACTIVE_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml")
# Shown in the browser (Content-Disposition: inline); everything else is downloaded.
INLINE_PREFIXES = ("image/", "audio/", "video/", "application/pdf")
PHOTO_LIMITED_CHAT_TYPES = ("telegram", "telegroup")


@dataclass(frozen=True)
class FileType:
    extension: str
    content_type: str
    kind: str  # the message type: image, video, audio or document


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def file_type(name: str) -> FileType | None:
    """The type a file name's extension gives, or None when Wazzup cannot send it."""
    ext = extension_of(name)
    mime = MIME_BY_EXTENSION.get(ext)
    return None if mime is None else FileType(ext, mime, message_kind(mime))


def message_kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "document"


def is_active(declared_type: str | None) -> bool:
    return (declared_type or "").split(";", 1)[0].strip().lower() in ACTIVE_TYPES


def is_inline(content_type: str) -> bool:
    return content_type.startswith(INLINE_PREFIXES)


def size_limit(kind: str, chat_type: str | None, transport: str | None) -> tuple[int, str]:
    """The largest file of ``kind`` the chat's messenger takes, in bytes, and why that much."""
    chat_type, transport = (chat_type or "whatsapp").lower(), (transport or "").lower()
    if kind == "image" and chat_type in PHOTO_LIMITED_CHAT_TYPES:
        return MAX_PHOTO_BYTES, "Telegram takes photos up to 5 MB"
    if kind == "image" and chat_type == "whatsapp" and transport == WABA_TRANSPORT:
        return MAX_PHOTO_BYTES, "WhatsApp Business (WABA) takes photos up to 5 MB"
    return MAX_FILE_BYTES, "Wazzup takes files up to 10 MB"


def clean_name(raw: str | None) -> str:
    """The file name an agent's browser sent, safe to store and show: the last path part only (either
    slash), no control or format characters (a right-to-left override could disguise ``gpj.exe``),
    no blanks or dots at the ends, at most ``MAX_NAME`` characters with its extension kept."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = name.strip().strip(".").strip()
    if len(name) > MAX_NAME:
        ext = extension_of(name)
        keep = MAX_NAME - len(ext) - 1 if ext and len(ext) < 16 else MAX_NAME
        name = name[:keep].rstrip() + (f".{ext}" if keep < MAX_NAME else "")
    return name


def human_size(size: int) -> str:
    if size == 0:
        return "0 KB"  # nothing stored; any other small size reads as 1 KB rather than 0
    return f"{size / MB:.1f} MB" if size >= MB // 10 else f"{max(1, round(size / 1000))} KB"
