"""Text the user gives (files, prompts on the command line): UTF-8 only, refused in one line naming where it is not.

Text files are read as UTF-8 with or without a BOM; UTF-16/32 and other encodings (Latin-1, Windows-1252) are
refused naming the file, the line and the byte. Prompts are refused when empty or blank, or when they hold bytes
that are not UTF-8 (Python keeps such command-line bytes as lone surrogates, which no tokenizer accepts).
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from .errors import ConsisIDError

_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)
SAVE_AS_UTF8 = "save it as UTF-8 (e.g. Excel: 'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)')"


class TextInputError(ConsisIDError, ValueError):
    """A text file or prompt that cannot be used as it is (wrong encoding, unreadable, empty)."""


def decode_utf8(data: bytes, name: str) -> str:
    """UTF-8 text of `data` (a UTF-8 BOM is dropped); any other encoding is refused naming the line and byte."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise TextInputError(f"{name} is {encoding} text; {SAVE_AS_UTF8}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start]
        guess = data[exc.start : exc.start + 1].decode("cp1252", errors="replace")
        raise TextInputError(
            f"{name} is not UTF-8: line {line} has byte 0x{byte:02x} ({guess!r} in Latin-1/Windows-1252, the "
            f"usual cause); {SAVE_AS_UTF8}"
        ) from None


def read_text_file(path: str | os.PathLike, option: str = "") -> str:
    """The UTF-8 text of a file the user named (`option` starts the message, e.g. '--prompts')."""
    path = Path(path).expanduser()
    name = f"{option} {path}".strip()
    if path.is_dir():
        raise TextInputError(f"{name} is a folder; give a text file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TextInputError(f"{name} does not exist") from None
    except OSError as exc:
        raise TextInputError(f"{name} cannot be read ({exc.strerror or exc})") from None
    return decode_utf8(data, name)


def prompt_problem(text: object) -> str | None:
    """Why `text` cannot be a prompt (not text, bytes that are not UTF-8, empty or only spaces), or None."""
    if not isinstance(text, str):
        return f"must be text; got {type(text).__name__}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        byte = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"character U+{char:04X}"
        return (f"holds {byte} at character {exc.start + 1}, which is not UTF-8 text; type it in a UTF-8 terminal "
                "(LANG=C.UTF-8) or convert it to UTF-8")
    if not text.strip():
        return "is empty; describe what happens in the video"
    return None


def check_prompt(text: object, option: str = "--prompt", allow_empty: bool = False) -> str:
    """A usable prompt (the same rule everywhere: the batch jobs file uses `prompt_problem` too)."""
    problem = prompt_problem(text)
    if problem and not (allow_empty and isinstance(text, str) and not text.strip()):
        raise TextInputError(f"{option} {problem}")
    return text  # type: ignore[return-value]
