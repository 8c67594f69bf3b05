"""Output folders that are never destroyed (data contract v2, "Output folders are never destroyed").

A run folder is a folder ccm-audit made: it holds a marker file (``.ccm-audit-run``, JSON with the
kind of run and the files the last run wrote). ``--out`` may name

- a folder that does not exist yet (it is created),
- an existing empty folder (it is adopted: the marker is written into it),
- a folder an earlier run of the same kind made (its marker says so).

Anything else (a user's data folder, a folder of earlier reports, a file, a folder of another
kind of run) is refused with an :class:`~ccmlib.errors.InputError` before any expensive work.

Writing: a run holds an exclusive lock on ``OUT/.ccm-audit.lock`` (``flock``, released by the
kernel when the process ends, so a killed run never leaves a stale lock) from the moment the
folder is checked until its files are in place; a second run into the same folder stops at once
with a message naming the folder. Files are written into a staging folder inside OUT with a
unique name (``.staging-<random>``) and moved into place one by one with ``os.replace`` (whole
files, never half-written); ``run.json`` moves last. A file that the previous run wrote and this
run does not (say ``sample.csv`` of a sampled run) is removed so a folder never mixes runs; a file
the marker does not list is never deleted or overwritten. Staging folders of killed runs are
removed by the next run into the same folder.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ccmlib.errors import InputError

MARKER = ".ccm-audit-run"
LOCK = ".ccm-audit.lock"
STAGING_PREFIX = ".staging-"
#: files a run never deletes even when it wrote them once (decisions recorded by a reviewer)
KEEP = frozenset({"overrides.csv", "audit/overrides.csv"})
#: names that are part of a run folder's machinery, not its content
_OWN = frozenset({MARKER, LOCK})
#: published last, so a reader that sees the new run.json sees the new tables too
_LAST = ("run.json", "audit/run.json")

_held: dict[Path, "RunFolder"] = {}


def _read_marker(folder: Path) -> dict | None:
    p = folder / MARKER
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{folder}: its ccm-audit marker {MARKER} is damaged; choose a new --out folder") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise InputError(f"{folder}: its ccm-audit marker {MARKER} is damaged; choose a new --out folder")
    data.setdefault("files", [])
    return data


def _user_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in _OWN and not p.name.startswith(STAGING_PREFIX)
                  and not (p.name.startswith(MARKER + ".") and p.name.endswith(".tmp")))


def check_out(path: str | Path, kind: str) -> Path:
    """Raise :class:`InputError` unless ``path`` may receive a run of ``kind``; cheap, no side effects."""
    out = Path(path)
    if out.is_symlink() and not out.exists():
        raise InputError(f"--out {out}: a broken symbolic link; choose a new folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; ccm-audit never overwrites a file it did not write. "
                         f"Choose a new folder name")
    if not out.exists():
        parent = out.parent if str(out.parent) else Path(".")
        for anc in [parent, *parent.parents]:
            if anc.exists():
                if not anc.is_dir():
                    raise InputError(f"--out {out}: {anc} is a file, not a folder")
                if not os.access(anc, os.W_OK | os.X_OK):
                    raise InputError(f"--out {out}: cannot create it, {anc} is not writable")
                break
        return out
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: folder is not writable")
    marker = _read_marker(out)
    if marker is None:
        entries = _user_entries(out)
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            raise InputError(f"--out {out}: this folder was not made by ccm-audit and is not empty ({shown}); ccm-audit writes "
                             f"only into a new or empty folder, or one an earlier `ccm-audit {kind}` made, so that it can never "
                             f"delete or overwrite your files. Choose a new folder name")
        return out
    if marker["kind"] != kind:
        raise InputError(f"--out {out}: this folder holds a `ccm-audit {marker['kind']}` run, not a `ccm-audit {kind}` run; "
                         f"choose another folder")
    return out


class RunFolder:
    """An output folder opened for one run: checked, locked, written through staging folders.

    Use as a context manager::

        with RunFolder(out, "check") as rf:
            stage = rf.stage()
            ...write files into stage...
            rf.publish(stage)
    """

    def __init__(self, path: str | Path, kind: str):
        self.path = Path(path)
        self.kind = kind
        self._fd: int | None = None
        self._stages: list[Path] = []
        self._outer: RunFolder | None = None
        self._created = False
        self._depth = 0

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> "RunFolder":
        key = self.path.resolve()
        held = _held.get(key)
        if held is not None:  # this process already holds the folder (write_outputs inside check): re-enter it
            if held.kind != self.kind:
                raise InputError(f"--out {self.path}: already open for a `ccm-audit {held.kind}` run")
            held._depth += 1
            self._outer = held if held is not self else None
            return held
        check_out(self.path, self.kind)
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out {self.path}: cannot create the folder ({exc.strerror})") from None
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise InputError(f"--out {self.path}: cannot create its lock file ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"--out {self.path}: another ccm-audit run is writing to this folder right now; wait for it "
                                 f"to finish, or choose another folder") from None
            raise
        self._fd = fd
        try:
            check_out(self.path, self.kind)  # again under the lock: a concurrent run may have filled it meanwhile
            self._clean_stale_stages()
            if _read_marker(self.path) is None:
                self._write_marker([])
        except BaseException:
            self._release()
            raise
        _held[key] = self
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        owner = self._outer or self
        if owner._depth > 0:
            owner._depth -= 1
            self._outer = None
            return
        for s in self._stages:
            shutil.rmtree(s, ignore_errors=True)
        _held.pop(self.path.resolve(), None)
        if self._created and not self.files() and not _user_entries(self.path):
            for name in (MARKER, LOCK):  # a run that stopped before writing anything leaves no empty folder behind
                (self.path / name).unlink(missing_ok=True)
            try:
                self.path.rmdir()
            except OSError:
                pass
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    # ------------------------------------------------------------------ marker
    def _write_marker(self, files: list[str]) -> None:
        from ccmlib._version import __version__

        data = {"kind": self.kind, "tool": "ccm-audit", "version": __version__, "files": sorted(files),
                "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        tmp = self.path / f"{MARKER}.{secrets.token_hex(6)}.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / MARKER)

    def files(self) -> set[str]:
        m = _read_marker(self.path)
        return set(m["files"]) if m else set()

    def _nested_own(self, name: str) -> bool:
        """A file in a subfolder that is itself a ccm-audit run folder listing it (a report's audit/ re-run by the chart
        review): written by ccm-audit, so a later run of the outer folder may replace it."""
        parts = Path(name).parts
        if len(parts) < 2:
            return False
        sub = self.path / parts[0]
        try:
            m = _read_marker(sub)
        except InputError:
            return False
        return bool(m) and Path(*parts[1:]).as_posix() in m["files"]

    def _clean_stale_stages(self) -> None:
        for p in self.path.iterdir():
            if p.name.startswith(STAGING_PREFIX) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(MARKER + ".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ staging and publishing
    def stage(self) -> Path:
        """A new, empty staging folder inside the run folder (same file system, so moves are atomic)."""
        if self._fd is None and self._outer is None:
            raise RuntimeError("RunFolder.stage() outside its with-block")
        p = self.path / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
        p.mkdir()
        self._stages.append(p)
        return p

    def publish(self, stage: Path, add_only: bool = False) -> list[str]:
        """Move every file of ``stage`` into the run folder, remove what the previous run wrote and this one did not
        (never reviewer decisions; nothing at all with ``add_only``), and record the new file list in the marker."""
        stage = Path(stage)
        new = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file() or p.is_symlink())
        new = [n for n in new if Path(n).name != LOCK and (Path(n).name != MARKER or "/" in n)]
        old = self.files()
        clash = [n for n in new if n not in old and n not in KEEP and (self.path / n).exists() and not self._nested_own(n)]
        if clash:
            raise InputError(f"--out {self.path}: {', '.join(clash[:5])} already exist(s) there and were not written by "
                             f"ccm-audit; they are left alone. Move them away or choose another folder")
        order = [n for n in new if n not in _LAST] + [n for n in _LAST if n in new]
        for n in order:
            target = self.path / n
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise InputError(f"--out {self.path}: {n} is a folder where ccm-audit writes a file; move it away")
            os.replace(stage / n, target)
        for n in sorted(old - set(new)):
            if n in KEEP or add_only:
                continue
            p = self.path / n
            if p.is_file() or p.is_symlink():
                p.unlink()
        for d in sorted({str(Path(n).parent) for n in old - set(new)}, key=len, reverse=True):
            if d not in (".", ""):
                try:
                    (self.path / d).rmdir()  # only when empty
                except OSError:
                    pass
        kept = [n for n in old - set(new) if (self.path / n).exists()]
        self._write_marker(new + kept)
        shutil.rmtree(stage, ignore_errors=True)
        return new


def append_csv_row(path: Path, fields: list[str], row: dict, required: list[str] | None = None) -> dict:
    """Append one row to a log CSV (a reviewer's decisions, a trainee's answers), with the header when the file is new,
    and flush it to disk at once so nothing is lost if the process dies. A file that exists keeps its own columns, and
    must have the ``required`` ones (default: all of ``fields``): rows are never appended to someone else's CSV."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = csv_header(path)
    if head:
        missing = [c for c in (required if required is not None else fields) if c not in head]
        if missing:
            raise InputError(f"{path}: exists but is not this log (its header lacks {', '.join(missing)}); nothing was "
                             f"written to it. Give another file name")
        fields = head
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        if not head:
            w.writeheader()
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())
    return row


def csv_header(path: Path) -> list[str]:
    """The header of a CSV file that exists and is not empty (else [])."""
    import csv

    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file under a unique temporary name and move it into place whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
