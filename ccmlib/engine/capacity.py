"""Will a practice fit in this machine's memory? A cheap look before ``ccm-audit check`` loads it (issue #23).

The engine holds its tables in memory: about :data:`BYTES_PER_ENTRY` bytes per time entry at its peak (measured on
the benchmark practices, ``benchmarks/README.md``: the time log is the largest table and the others grow with it). A
practice that cannot fit would otherwise be stopped by the operating system after minutes of loading, with no message
at all. The time entries are counted without reading them: a Parquet file's row count is in its footer; a CSV file's
is estimated from its size and the length of its first lines.
"""
from __future__ import annotations

from pathlib import Path

#: peak resident memory of ``ccm-audit check`` per time entry of the data folder, with the process's own base. It grows
#: a little with the practice (longer ids, larger hash tables): the 1M patient-month benchmark practice (8.03M time
#: entries, Parquet) peaks at 5.2-5.6 GB, 650-700 bytes per entry; a shard of 26.8M entries of the 10M practice (its
#: default check, 3 shards) at 19.9 GiB, about 790 bytes per entry
BYTES_PER_ENTRY = 800
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


#: peak resident memory per time entry of a check in shards (``--shards``) outside its shards, the process tree's
#: whole: reading and validating the time log whole, and holding the output tables of every shard at the merge
#: (benchmarks/README.md: the 1M practice 1.89 GB, 235 bytes per entry; the 10M practice 18.6 GB, 232 bytes per entry)
SHARDED_BYTES_PER_ENTRY = 240
#: a shard's process beyond its time entries (its imports, the staff directory whole): 1M entries of a shard of the 1M
#: practice peak at 1.2-1.3 GB, with the parent's 0.14 GB beside it
SHARD_BASE_BYTES = 200 * 2 ** 20


def needed_bytes(entries: int, shards: int = 1, jobs: int = 1) -> int:
    """Estimated peak memory of checking a practice with ``entries`` time entries (in ``shards`` shards, ``jobs`` at
    once)."""
    if shards <= 1:
        return BASE_BYTES + BYTES_PER_ENTRY * int(entries)
    per_shard = SHARD_BASE_BYTES + BYTES_PER_ENTRY * -(-int(entries) // shards)
    return max(SHARDED_BYTES_PER_ENTRY * int(entries), BASE_BYTES + jobs * per_shard)


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB"


#: the memory a check may use when no ``--memory-limit`` is given: this share of the memory available
DEFAULT_SHARE = 0.9
#: the most shards a memory limit makes a practice into (beyond it the shards' own overhead dominates)
MAX_SHARDS = 4096
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9, "t": 10 ** 12,
          "tb": 10 ** 12, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def memory_limit(text: str | None, available: int | None = None) -> tuple[int | None, str]:
    """The bytes a check may use and how to say them: ``text`` is a size (``2GB``, ``1.5GiB``, ``800MB``; GB = 10^9
    bytes) or a share of the memory available (``60%``); None: :data:`DEFAULT_SHARE` of it. (None, '') when the memory
    available cannot be read and no size is given."""
    import re

    from ccmlib.errors import InputError

    if text is None or str(text).strip().endswith("%"):
        share = DEFAULT_SHARE if text is None else None
        if text is not None:
            try:
                share = float(str(text).strip()[:-1]) / 100
            except ValueError:
                share = -1.0
            if not 0 < share <= 1:
                raise InputError(f"--memory-limit {text}: a share of the memory available is more than 0% and at most 100%")
        available = available_bytes() if available is None else available  # (a size needs no reading of it)
        if available is None:
            return None, ""
        return int(available * share), f"the memory limit is {_gb(int(available * share))} ({share:.0%} of the {_gb(available)} available" + (
            "; --memory-limit sets it)" if text is None else ")")
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise InputError(f"--memory-limit {text}: give a size such as 2GB, 1.5GiB or 800MB, or a share of the memory "
                         f"available such as 60%")
    limit = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return limit, f"the memory limit is {_gb(limit)} (--memory-limit {str(text).strip()})"


def _entries(folder: str | Path) -> tuple[Path, int] | None:
    """The time log's file and its rows, where they can be counted cheaply (not in an Excel workbook, nor in a folder
    ``ccm-audit`` will reject anyway: loading says what is wrong with it)."""
    from ccmlib.errors import InputError
    from ccmlib.intake.sources import find_sources

    try:
        src = find_sources(folder).get("time_entries")
    except InputError:
        return None
    if src is None or src.sheet is not None:
        return None
    rows = count_rows(src.path)
    return None if rows is None else (src.path, rows)


def _holds(path: Path, rows: int) -> str:
    """How many time entries a file holds, as the messages say it (a CSV's count is an estimate)."""
    return f"{path}: {'holds' if path.suffix.lower() == '.parquet' else 'holds about'} {rows:,} time entries"


def check_fits(folder: str | Path, available: int | None = None, shards: int = 1, jobs: int = 1, said: str | None = None) -> None:
    """Raise :class:`~ccmlib.errors.InputError` when the practice in ``folder`` clearly cannot be checked in the memory
    available (``available`` bytes, described by ``said``; default :func:`available_bytes`). Quiet when it fits, when
    the time entries cannot be counted cheaply (an Excel workbook, a folder ``ccm-audit`` will reject anyway) or when
    the memory is unknown."""
    from ccmlib.errors import InputError

    found = _entries(folder)
    if found is None:
        return
    path, rows = found
    available = available_bytes() if available is None else available
    need = needed_bytes(rows, shards, jobs)
    if available is None or need <= available:
        return
    raise InputError(
        f"{_holds(path, rows)}; checking them needs about {_gb(need)} of memory ("
        + (f"about {BYTES_PER_ENTRY} bytes per time entry at the engine's peak" if shards <= 1 else
           f"in {shards} shards, {jobs} at once") + f"), and {said or _gb(available) + ' is available'}. Export only the "
        f"audited months' time entries (the rules read no other month's time), "
        + ("check in shards (--shards N holds about 1/N of the practice at once), " if shards <= 1 else "") +
        "or check on a machine with more memory; --no-memory-check tries anyway")


def choose_shards(folder: str | Path, limit: str | None = None, shards: int | None = None, jobs: int = 1,
                  available: int | None = None) -> tuple[int, str | None]:
    """How many shards of its patients to check the practice in (1: at once) within the memory limit (``limit`` as
    :func:`memory_limit` reads it), and why, when it is more than one and was not asked for (``shards``); raises
    :class:`~ccmlib.errors.InputError` when even the check in shards needs more (each table is read whole first: about
    :data:`SHARDED_BYTES_PER_ENTRY` bytes per time entry)."""
    budget, said = memory_limit(limit, available)
    if budget is None:
        return shards or 1, None
    if shards:
        check_fits(folder, budget, shards, jobs, said)
        return shards, None
    found = _entries(folder)
    if found is None or needed_bytes(found[1]) <= budget:
        return 1, None
    path, rows = found
    least = needed_bytes(rows, MAX_SHARDS, jobs)
    if least > budget:
        from ccmlib.errors import InputError
        raise InputError(
            f"{_holds(path, rows)}; checking them "
            f"needs about {_gb(needed_bytes(rows))} of memory at once, and even in shards about {_gb(least)} (each table is "
            f"read and validated whole first, about {SHARDED_BYTES_PER_ENTRY} bytes per time entry, and each shard's "
            f"process needs {_gb(SHARD_BASE_BYTES)} beyond its rows), and {said}. Export only the audited months' time "
            f"entries (the rules read no other month's time), or check on a machine with more memory; --no-memory-check "
            f"tries anyway")
    room = budget - BASE_BYTES - jobs * SHARD_BASE_BYTES  # for the shards' time entries (positive: least fits)
    n = max(2, -(-jobs * BYTES_PER_ENTRY * rows // room))
    while needed_bytes(rows, n, jobs) > budget:  # (a shard's rows are rounded up)
        n += 1
    return n, (f"checking in {n} shards of its patients: at once it needs about {_gb(needed_bytes(rows))}, and {said}; "
               f"in {n} shards about {_gb(needed_bytes(rows, n, jobs))} (the outputs are those of one check)")
