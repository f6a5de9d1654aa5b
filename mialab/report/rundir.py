"""Run directories written whole or not at all.

A run directory is built under a temporary sibling name (``.<name>.partial-<random>``) and renamed
into place only once every file is written, so an interrupt (Ctrl-C, an exception, a full disk)
leaves either no run directory or the previous one, never a mix of files. Each complete
directory (a run, and each sub-run such as ``defenses/<name>/``) carries ``manifest.json``,
written last inside it: ``mialab report`` refuses a directory without one.

An existing non-empty directory is refused unless ``overwrite`` is given; then it is replaced as
a whole, and removed only after the new one is complete. Only a directory that is a mialab run
(it holds ``manifest.json`` or ``results.json``) is ever replaced: ``overwrite`` never deletes an
unrelated directory named by mistake.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mialab.validation import check_bool

__all__ = ["MANIFEST", "check_run_dir", "staged_run_dir", "finish_dir", "check_complete"]

#: the completion marker of a run directory (and of each sub-run written with it)
MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "mialab-run-directory"
_MANIFEST_VERSION = 1


def _hint(name: str) -> str:
    return "--overwrite" if name.startswith("--") else "overwrite=True"


def _is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path / "results.json").is_file()


def check_run_dir(out: str | os.PathLike[str], *, overwrite: bool = False, name: str = "out") -> Path:
    """Check, before anything is trained, that a run directory can be written at ``out``;
    return it as an absolute path. Creates nothing.

    ``out`` must not be an existing file; an existing directory must be empty, or (with
    ``overwrite``) a mialab run directory, which the run will replace as a whole; the nearest
    existing ancestor must be a writable directory. ``name`` is the argument named in errors
    (``"--out"`` for the command line). Raises ``TypeError``, ``ValueError`` or
    ``PermissionError`` with a one-line message.

    >>> check_run_dir("runs/new-run")  # doctest: +SKIP
    PosixPath('/home/me/runs/new-run')
    """
    check_bool(overwrite, name="overwrite")
    if not isinstance(out, (str, os.PathLike)) or str(out) == "":
        raise TypeError(f"{name} must be a directory path (str or os.PathLike), got {out!r}")
    path = Path(os.path.abspath(out))
    cwd = Path(os.getcwd())
    if path == cwd or path in cwd.parents:
        raise ValueError(f"{name} must be a new directory, not the current directory or one above it; got {out}")
    if path.is_symlink():
        raise ValueError(f"{name} must be a directory, not a symbolic link; got {out} -> {os.readlink(path)}")
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{name} must be a run directory, but {out} is an existing file; "
                             "choose another path or remove the file")
        if any(path.iterdir()):
            if not overwrite:
                raise ValueError(f"{name} {out} already exists and is not empty; pass {_hint(name)} to replace "
                                 f"it as a whole, or choose another {name}")
            if not _is_run_dir(path):
                raise ValueError(f"{name} {out} is a non-empty directory that is not a mialab run directory "
                                 f"(no {MANIFEST} or results.json); {_hint(name)} only replaces run directories: "
                                 "choose another path or empty it yourself")
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link: creating below it fails
            raise ValueError(f"{name} {out} cannot be created: {ancestor} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{name} {out} cannot be created: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"{name} {out} cannot be created: no permission to write in {ancestor}")
    return path


def finish_dir(directory: Path) -> None:
    """Mark ``directory`` complete: write its :data:`MANIFEST` (the files and subdirectories it
    holds), last. Called once everything else in it is written."""
    from mialab._version import __version__
    from mialab.results import SCHEMA_VERSION

    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    subdirs = sorted(p.name for p in directory.iterdir() if p.is_dir())
    doc = {"format": _MANIFEST_FORMAT, "manifest_version": _MANIFEST_VERSION, "complete": True,
           "mialab": __version__, "schema_version": SCHEMA_VERSION, "files": files, "subdirectories": subdirs}
    (directory / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def check_complete(run_dir: Path, *, name: str = "run_dir") -> dict[str, Any]:
    """The manifest of a complete run directory; ``ValueError`` (one line) for an incomplete one:
    no manifest (an interrupted run, or one written before run directories had manifests), an
    unreadable one, or a file it lists that is missing."""
    path = run_dir / MANIFEST
    if run_dir.name.startswith(".") and ".partial-" in run_dir.name:
        raise ValueError(f"{name} {run_dir} is the temporary directory of an interrupted or unfinished run; "
                         "re-run the audit (models already trained are reused from the cache)")
    if not path.is_file():
        raise ValueError(f"{name} {run_dir} is not a complete run directory: it has no {MANIFEST} (the run was "
                         "interrupted, or written before run directories carried one); re-run the audit")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{name} {run_dir}: {MANIFEST} is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != _MANIFEST_FORMAT or doc.get("complete") is not True \
            or not isinstance(doc.get("files"), list):
        raise ValueError(f"{name} {run_dir}: {MANIFEST} does not mark a complete mialab run directory "
                         f"(expected format {_MANIFEST_FORMAT!r}, complete: true and a list of files)")
    missing = [f for f in doc["files"] if isinstance(f, str) and f not in ("report.html", "report.md")
               and not (run_dir / f).is_file()]
    if missing:
        raise ValueError(f"{name} {run_dir} is incomplete: {MANIFEST} lists files that are missing: {missing}")
    return doc


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C for the few renames that swap a run directory into place, so that an
    interrupt cannot fall between them; it is raised as soon as they are done. Only the main
    thread can set signal handlers; elsewhere nothing is deferred (there is no Ctrl-C there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *a: received.append(a))
    if previous is None:  # a handler not installed from Python (an embedding application): the default
        previous = signal.SIG_DFL
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def staged_run_dir(out: str | os.PathLike[str], *, overwrite: bool = False, name: str = "out") -> Iterator[Path]:
    """Build a run directory under a temporary sibling name; yield that directory.

    On a clean exit the directory gets its :data:`MANIFEST` and is renamed to ``out`` (an
    existing ``out`` is replaced only with ``overwrite``, and removed only after the new one is
    in place). On any exception, ``KeyboardInterrupt`` included, the temporary directory is
    removed and ``out`` is left as it was.

    >>> with staged_run_dir("runs/x") as tmp:  # doctest: +SKIP
    ...     (tmp / "results.json").write_text("{}")
    """
    final = check_run_dir(out, overwrite=overwrite, name=name)
    final.parent.mkdir(parents=True, exist_ok=True)
    # a name no other writer (thread, process, container sharing the disk) can hold
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename: a run directory is an ordinary one
    try:
        yield tmp
        finish_dir(tmp)
        # the directory may have appeared while the run worked: check again, just before the swap
        check_run_dir(final, overwrite=overwrite, name=name)
        with _sigint_deferred():
            moved = False
            if overwrite and final.exists() and any(final.iterdir()):
                # only an overwrite moves a run aside; otherwise the rename below fails on a
                # directory another writer filled since the check, and deletes nothing
                old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
                final.rename(old)  # replaces the empty placeholder (POSIX rename of directories)
                moved = True
            elif final.is_dir() and not any(final.iterdir()):
                final.rmdir()
            try:
                tmp.rename(final)
            except BaseException:
                if moved:  # put the previous run back: never neither
                    old.rename(final)
                raise
            if moved:
                _remove(old)
    except BaseException:
        _remove(tmp)
        raise
