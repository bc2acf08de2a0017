"""Captions of the clips: a sidecar NAME.txt beside each clip, or a CSV (clip,caption); no captioning model."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import ConsisIDError
from ..text_input import TextInputError, read_text_file
from .clips import ClipError, ClipSource


def read_caption_table(path: Path | None) -> dict[str, str]:
    """{clip name or stem: caption} from a CSV with a header naming a clip column and a caption column."""
    if path is None or Path(path).is_dir():
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConsisIDError(f"--captions {path} does not exist (give a CSV file, or a folder of NAME.txt files)")
    text = read_text_file(path, "--captions")  # UTF-8 (BOM or not), else one line naming the line and byte
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConsisIDError(f"--captions {path} is not a readable CSV ({exc})") from None
    if not rows:
        return {}
    columns = {c.lower().strip(): c for c in rows[0]}
    clip_col = next((columns[c] for c in ("clip", "file", "name", "video", "path") if c in columns), None)
    text_col = next((columns[c] for c in ("caption", "prompt", "text") if c in columns), None)
    if clip_col is None or text_col is None:
        raise ConsisIDError(f"{path} needs a header with a clip column (clip/file/name) and a caption column (caption/prompt/text)")
    table = {}
    for row in rows:
        name = Path(str(row[clip_col]).strip()).name
        table[name] = str(row[text_col]).strip()
        table.setdefault(Path(name).stem, table[name])
    return table


def caption_for(source: ClipSource, table: dict[str, str], sidecar_dir: Path | None) -> str | None:
    """The clip's caption: CSV row, else NAME.txt in --captions (a folder) or beside the clip, or caption.txt in a
    frames folder; a caption file that is not UTF-8 raises ClipError (the clip is skipped with that reason)."""
    for key in (source.path.name, source.clip_id):
        if key in table and table[key]:
            return table[key]
    candidates = []
    if sidecar_dir is not None and Path(sidecar_dir).is_dir():
        candidates.append(Path(sidecar_dir) / f"{source.clip_id}.txt")
    candidates.append(source.path.with_name(f"{source.clip_id}.txt") if source.kind != "frames"
                      else source.path.parent / f"{source.clip_id}.txt")
    if source.kind == "frames":
        candidates.append(source.path / "caption.txt")
    for path in candidates:
        if path.is_file():
            try:
                text = read_text_file(path, "caption file").strip()
            except TextInputError as exc:
                raise ClipError(str(exc)) from None
            if text:
                return text
    return None
