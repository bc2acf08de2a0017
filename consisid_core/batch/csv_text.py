"""Read a jobs CSV strictly: UTF-8 (with or without BOM) only, quotes that open must close, line numbers kept."""

from __future__ import annotations

import csv
import io

from ..errors import ConsisIDError
from ..text_input import SAVE_AS_UTF8 as SAVE_AS_UTF8, TextInputError, decode_utf8


class JobsFileError(ConsisIDError, ValueError):
    """The jobs CSV cannot be used as a whole (unreadable, wrong encoding, broken quoting, no jobs...)."""


def decode(data: bytes, name: str) -> str:
    """UTF-8 text of the file (a UTF-8 BOM is dropped); any other encoding is refused naming the line (text_input)."""
    try:
        return decode_utf8(data, name)
    except TextInputError as exc:
        raise JobsFileError(str(exc)) from None


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
