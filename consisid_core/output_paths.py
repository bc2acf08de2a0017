"""Where the commands may write: every output path is checked before any work starts, and written through a partial name.

The one set of rules for every sub-command: an existing file is kept unless --overwrite; a folder where a file
is expected (and a file where a folder is expected) is refused; a place that cannot be written (no permission, a
read-only mount) is refused by really creating a probe file there; nothing is written into a model folder or
over it. Results are written to a hidden partial name and renamed into place, so a failure never leaves half a
file under the real name nor replaces a good one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .errors import InputFileError

PathLike = str | os.PathLike


def _first_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            return parent
    return Path(path.anchor or ".")


def _make_probe(folder: Path) -> None:
    """Create and remove a small file in `folder` (raises OSError when the folder cannot be written)."""
    handle, name = tempfile.mkstemp(prefix=".consisid-write-test-", dir=folder)
    os.close(handle)
    os.unlink(name)


def write_problem(folder: Path) -> str | None:
    """Why nothing can be written in `folder` (tried for real: root ignores permissions but not read-only mounts)."""
    try:
        _make_probe(folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_writable_place(folder: PathLike, option: str, target: PathLike) -> Path:
    """`folder` exists and can be written, or can be created under an existing folder that can be written."""
    folder = Path(folder) if str(folder) else Path(".")
    existing = _first_existing(folder)
    if not existing.is_dir():
        raise InputFileError(f"{option} {target}: cannot create the folder {folder} because {existing} is a file")
    problem = write_problem(existing)
    if problem:
        raise InputFileError(f"{option} {target}: cannot write in {existing} ({problem}); choose another place")
    return folder


def check_not_in_models(path: PathLike, models: Iterable[PathLike | None], option: str, what: str = "model folder",
                        why: str = "the model's files are never replaced or added to") -> None:
    """Refuse an output that is a model folder or lies inside one (its files must stay as they were downloaded)."""
    target = Path(path).expanduser().resolve()
    for model in models:
        if model is None:
            continue
        root = Path(model).expanduser().resolve()
        if target == root or root in target.parents:
            where = f"is the {what}" if target == root else f"is inside the {what} {model}"
            raise InputFileError(f"{option} {path} {where}; write results elsewhere ({why})")


def check_output_file(path: PathLike, *, option: str = "--out", overwrite: bool = False,
                      suffixes: Sequence[str] = (), what: str = "", models: Iterable[PathLike | None] = (),
                      example: str = "") -> Path:
    """An output file we may write: not a folder, an allowed suffix, not in a model folder, its folder writable,
    and no existing file unless `overwrite`. Nothing is created."""
    path = Path(path).expanduser()
    if path.is_dir():
        example = path / (example or f"consisid{suffixes[0] if suffixes else ''}")
        raise InputFileError(f"{option} {path} is a folder; give a file name inside it, e.g. {example}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputFileError(f"{option} {path} must end in {' or '.join(suffixes)}" + (f" ({what})" if what else ""))
    check_not_in_models(path, models, option)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise InputFileError(f"{option} {path} already exists; pass --overwrite to replace it, or choose another name")
        if not path.is_file():
            raise InputFileError(f"{option} {path} exists and is not a regular file; choose another name")
    check_writable_place(path.parent, option, path)
    return path


def check_output_folder(path: PathLike, *, option: str = "--out", purpose: str = "the results",
                        models: Iterable[PathLike | None] = ()) -> Path:
    """A folder we may create or write into: not a file, not in a model folder, writable. Nothing is created."""
    path = Path(path).expanduser()
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise InputFileError(f"{option} {path} is a file, not a folder; give a folder for {purpose}")
    check_not_in_models(path, models, option)
    check_writable_place(path, option, path)
    return path


def check_new_files(paths: Iterable[PathLike], *, option: str, overwrite: bool = False) -> None:
    """Files a command will write inside its output folder: each existing one is kept unless `overwrite`."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            raise InputFileError(f"{option}: {path} is a folder where a file will be written; move it away")
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise InputFileError(f"{option}: {path} already exists; pass --overwrite to replace it, or choose "
                                 "another place")


def partial_path(path: PathLike) -> Path:
    """The hidden name a result is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_through_partial(path: PathLike, write: Callable[[Path], None], *, overwrite: bool = False,
                          option: str = "--out") -> Path:
    """`write(partial)` then rename over `path` (checked again just before: it may have appeared meanwhile);
    the partial file is removed whatever happens, and a failing disk is one line, not a traceback."""
    path = Path(path).expanduser()
    partial = partial_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        if path.is_dir() or ((path.exists() or path.is_symlink()) and not overwrite):
            raise InputFileError(f"{option} {path} appeared while this command ran; it was kept (the result "
                                 "was not written)")
        os.replace(partial, path)
    except OSError as exc:
        raise InputFileError(f"{option} {path}: could not be written ({exc.strerror or exc}); nothing was "
                             "replaced") from None
    finally:
        if partial.exists():
            partial.unlink()
    return path


def write_text_through_partial(path: PathLike, text: str, *, overwrite: bool = False, option: str = "--out") -> Path:
    """A UTF-8 text file written through a partial name."""
    return write_through_partial(path, lambda p: p.write_text(text, encoding="utf-8"), overwrite=overwrite,
                                 option=option)


def replace_folder_through_partial(folder: PathLike, write: Callable[[Path], None]) -> Path:
    """`write(partial_folder)` then swap it in for `folder` (an earlier one is removed only once the new one is
    complete)."""
    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write(partial)
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder
