"""Read a jobs CSV strictly: UTF-8 (with or without BOM) only, quotes that open must close, line numbers kept."""

from __future__ import annotations

import codecs
import csv
import io

from ..errors import ConsisIDError

_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)
SAVE_AS_UTF8 = "save it as UTF-8 (e.g. Excel: 'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)')"


class JobsFileError(ConsisIDError, ValueError):
    """The jobs CSV cannot be used as a whole (unreadable, wrong encoding, broken quoting, no jobs...)."""


def decode(data: bytes, name: str) -> str:
    """UTF-8 text of the file (a UTF-8 BOM is dropped); any other encoding is refused naming the line."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise JobsFileError(f"{name} is {encoding} text; {SAVE_AS_UTF8}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start]
        guess = data[exc.start : exc.start + 1].decode("cp1252", errors="replace")
        raise JobsFileError(
            f"{name} is not UTF-8: line {line} has byte 0x{byte:02x} ({guess!r} in Latin-1/Windows-1252, the "
            f"usual cause); {SAVE_AS_UTF8}"
        ) from None


FIELD_LIMIT = 1 << 20  # characters in one CSV field (Python's csv default is 131072); T5 reads ~226 tokens anyway


def read_records(text: str, name: str) -> list[tuple[int, list[str]]]:
    """(first line number, fields) of every record; an unclosed or misplaced quote, or a field over FIELD_LIMIT
    characters, is refused with its line."""
    previous = csv.field_size_limit(FIELD_LIMIT)
    try:
        return _read_records(text, name)
    finally:
        csv.field_size_limit(previous)


def _read_records(text: str, name: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise JobsFileError(
                    f"{name} line {start}: a field is longer than {FIELD_LIMIT} characters, the most one CSV field "
                    "may hold here; a prompt is read only up to about 226 T5 tokens (~1,000 characters), so shorten "
                    "it (or a quote that opens a field is never closed, swallowing the lines after it)"
                ) from None
            raise JobsFileError(
                f"{name} line {start}: a quoted field is not closed properly ({exc}, noticed on line "
                f"{reader.line_num}); a quote that opens a field must close it, and a quote inside a field is "
                "written twice (\"\")"
            ) from None
        records.append((start, fields))
        start = reader.line_num + 1
