"""Will a practice fit in this machine's memory? A cheap look before ``ccm-audit check`` loads it (issue #23).

The engine holds its tables in memory: about :data:`BYTES_PER_ENTRY` bytes per time entry at its peak (measured on
the benchmark practices, ``benchmarks/README.md``: the time log is the largest table and the others grow with it). A
practice that cannot fit would otherwise be stopped by the operating system after minutes of loading, with no message
at all. The time entries are counted without reading them: a Parquet file's row count is in its footer; a CSV file's
is estimated from its size and the length of its first lines.
"""
from __future__ import annotations

from pathlib import Path

#: peak resident memory of ``ccm-audit check`` per time entry of the data folder, with the process's own base: the 1M
#: patient-month benchmark practice (8.03M time entries, 1.43M claim lines, Parquet) peaks at 5.3 GB (about 610 bytes
#: per entry over the base); the rest is room for a log whose descriptions are free text that does not repeat
BYTES_PER_ENTRY = 700
BASE_BYTES = 400 * 2 ** 20
_SAMPLE = 2 ** 20  # bytes of a CSV file read to estimate its mean line length


def count_rows(path: Path) -> int | None:
    """Rows of a Parquet file (its footer) or, estimated, of a CSV file (its size over the mean length of the lines in
    its first MiB, less the header); None for other files or when the file cannot be read this way."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        if suffix == ".csv":
            size = path.stat().st_size
            with path.open("rb") as fh:
                head = fh.read(_SAMPLE)
            lines = head.count(b"\n")
            if size <= len(head):  # read whole: counted, not estimated
                return max(lines - 1 + (0 if head.endswith(b"\n") or not head else 1), 0)
            return max(int(size / (len(head) / max(lines, 1))) - 1, 0)
    except (OSError, ValueError):
        return None
    except Exception:  # a damaged Parquet footer: loading will name the problem
        return None
    return None


def available_bytes() -> int | None:
    """Memory this process can still use: the kernel's MemAvailable, or less when a control group limits it; None
    where neither can be read (then nothing is checked)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit.isdigit():
            room = int(limit) - used
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


#: peak resident memory per time entry of a check in shards (``--shards``) outside its shards: reading and validating
#: the time log whole, and holding the output tables of every shard (the 1M benchmark practice: see benchmarks/README.md)
SHARDED_BYTES_PER_ENTRY = 250


def needed_bytes(entries: int, shards: int = 1, jobs: int = 1) -> int:
    """Estimated peak memory of checking a practice with ``entries`` time entries (in ``shards`` shards, ``jobs`` at
    once)."""
    if shards <= 1:
        return BASE_BYTES + BYTES_PER_ENTRY * int(entries)
    return BASE_BYTES + max(SHARDED_BYTES_PER_ENTRY * int(entries), jobs * BYTES_PER_ENTRY * -(-int(entries) // shards))


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB"


def check_fits(folder: str | Path, available: int | None = None, shards: int = 1, jobs: int = 1) -> None:
    """Raise :class:`~ccmlib.errors.InputError` when the practice in ``folder`` clearly cannot be checked in the memory
    available (``available`` bytes; default :func:`available_bytes`). Quiet when it fits, when the time entries cannot
    be counted cheaply (an Excel workbook, a folder ``ccm-audit`` will reject anyway) or when the memory is unknown."""
    from ccmlib.errors import InputError
    from ccmlib.intake.sources import find_sources

    try:
        src = find_sources(folder).get("time_entries")
    except InputError:
        return  # loading says what is wrong with the folder
    if src is None or src.sheet is not None:
        return
    rows = count_rows(src.path)
    if rows is None:
        return
    available = available_bytes() if available is None else available
    need = needed_bytes(rows, shards, jobs)
    if available is None or need <= available:
        return
    how = "holds" if src.path.suffix.lower() == ".parquet" else "holds about"
    raise InputError(
        f"{src.path}: {how} {rows:,} time entries; checking them needs about {_gb(need)} of memory ("
        + (f"about {BYTES_PER_ENTRY} bytes per time entry at the engine's peak" if shards <= 1 else
           f"in {shards} shards, {jobs} at once") + f"), and {_gb(available)} is available. Export only the audited months' time entries "
        f"(the rules read no other month's time), "
        + ("check in shards (--shards N holds about 1/N of the practice at once), " if shards <= 1 else "") +
        "or check on a machine with more memory; --no-memory-check tries anyway")
