"""A practice too large for the machine's memory is refused before loading, with the estimate (issue #23)."""
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ccmlib.cli import main
from ccmlib.engine import capacity
from ccmlib.errors import InputError

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def test_rows_of_a_parquet_file_come_from_its_footer_and_of_a_csv_from_its_size(tmp_path):
    pd.DataFrame({"a": range(1234), "b": ["x" * 7] * 1234}).to_parquet(tmp_path / "t.parquet")
    assert capacity.count_rows(tmp_path / "t.parquet") == 1234
    # a small CSV is read whole: counted exactly, with or without a final newline
    (tmp_path / "s.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "n.csv").write_text("a,b\n1,2\n3,4")
    (tmp_path / "h.csv").write_text("a,b\n")
    assert [capacity.count_rows(tmp_path / f) for f in ("s.csv", "n.csv", "h.csv")] == [2, 2, 0]
    assert capacity.count_rows(DEMO / "time_entries.csv") == len(pd.read_csv(DEMO / "time_entries.csv"))
    # a large one is estimated from its first MiB: within a few percent
    rows = 60_000
    pd.DataFrame({"entry_id": [f"E{i}" for i in range(rows)], "description": ["care coordination call"] * rows}).to_csv(
        tmp_path / "big.csv", index=False)
    assert abs(capacity.count_rows(tmp_path / "big.csv") - rows) < rows * 0.05
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert capacity.count_rows(tmp_path / "bad.parquet") is None
    assert capacity.count_rows(tmp_path / "x.xlsx") is None


def test_check_fits_refuses_only_what_clearly_does_not_fit(tmp_path):
    entries = capacity.count_rows(DEMO / "time_entries.csv")
    need = capacity.needed_bytes(entries)
    capacity.check_fits(DEMO, available=need)  # fits exactly: quiet
    capacity.check_fits(DEMO)  # the demo fits in the memory this machine has
    with pytest.raises(InputError) as exc:
        capacity.check_fits(DEMO, available=need - 1)
    msg = str(exc.value)
    assert str(DEMO / "time_entries.csv") in msg and f"{entries:,} time entries" in msg and "--no-memory-check" in msg
    assert "holds about" in msg  # a CSV's count is an estimate (here exact, but said so)
    # what cannot be counted cheaply, or a folder loading will reject, is not judged here
    capacity.check_fits(tmp_path / "missing", available=1)
    (tmp_path / "patients.csv").write_text("patient_id\nP1\n")
    capacity.check_fits(tmp_path, available=1)


def test_the_cli_refuses_before_making_the_run_folder_and_can_be_told_to_try(tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "available_bytes", lambda: 10 * 2 ** 20)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["check", str(DEMO), "--out", str(out), "--period", "2026Q3", "--quiet"])
    assert r.exit_code == 2, r.output
    assert "time_entries.csv" in r.output and "even in shards" in r.output
    assert "the memory limit is 0.0 GB (90% of the 0.0 GB available; --memory-limit sets it)" in r.output
    assert not out.exists()
    r = CliRunner().invoke(main, ["check", str(DEMO), "--out", str(out), "--period", "2026Q3", "--quiet", "--no-memory-check"])
    assert r.exit_code == 0, r.output
    assert (out / "claim_lines.csv").is_file()


def test_a_memory_limit_is_a_size_or_a_share_of_the_memory_available(monkeypatch):
    gb = 10 ** 9
    assert capacity.memory_limit("2GB", 24 * gb)[0] == 2 * gb
    assert capacity.memory_limit("1.5GiB", 24 * gb)[0] == int(1.5 * 2 ** 30)
    assert capacity.memory_limit("800mb", 24 * gb)[0] == 800 * 10 ** 6
    assert capacity.memory_limit("60%", 24 * gb) == (int(14.4 * gb), "the memory limit is 14.4 GB (60% of the 24.0 GB available)")
    assert capacity.memory_limit(None, 24 * gb)[0] == int(24 * gb * capacity.DEFAULT_SHARE)
    monkeypatch.setattr(capacity, "available_bytes", lambda: None)
    assert capacity.memory_limit(None) == (None, "")  # the memory cannot be read: nothing is judged
    assert capacity.memory_limit("2GB")[0] == 2 * gb  # a size needs no reading
    for bad in ("0GB", "two GB", "2PB", "-1GB", "150%", "0%", "x%"):
        with pytest.raises(InputError, match="--memory-limit"):
            capacity.memory_limit(bad, 24 * gb)


def test_a_practice_over_the_limit_is_checked_in_as_many_shards_as_fit_it(monkeypatch):
    entries = capacity.count_rows(DEMO / "time_entries.csv")
    with pytest.raises(InputError, match="even in shards"):  # the demo is small: shards' processes cost more than its rows
        capacity.choose_shards(DEMO, str(capacity.needed_bytes(entries) - 1))
    # the model without the processes' own memory, as for a large practice, where the time entries are what counts
    monkeypatch.setattr(capacity, "BASE_BYTES", 0)
    monkeypatch.setattr(capacity, "SHARD_BASE_BYTES", 0)
    at_once = capacity.needed_bytes(entries)
    assert capacity.choose_shards(DEMO, str(at_once)) == (1, None)  # fits at once
    n, why = capacity.choose_shards(DEMO, str(at_once - 1))
    assert n == 2 and capacity.needed_bytes(entries, 2) <= at_once - 1  # the fewest shards that fit
    assert why.startswith("checking in 2 shards of its patients") and "--memory-limit" in why
    room = 300 * entries  # the reading whole (240 bytes per entry) fits, the check at once (800) does not
    n, _ = capacity.choose_shards(DEMO, str(room))
    assert capacity.needed_bytes(entries, n) <= room < capacity.needed_bytes(entries, n - 1)
    n2, _ = capacity.choose_shards(DEMO, str(room), jobs=2)  # two at once: smaller shards
    assert n2 > n and capacity.needed_bytes(entries, n2, jobs=2) <= room < capacity.needed_bytes(entries, n2 - 1, jobs=2)
    assert capacity.choose_shards(DEMO, str(room), shards=3) == (3, None)  # asked for, and it fits: nothing to say
    with pytest.raises(InputError, match="in 3 shards, 1 at once"):  # asked-for shards that do not fit the limit
        capacity.choose_shards(DEMO, "100KB", shards=3)
    with pytest.raises(InputError, match="even in shards") as exc:  # the most shards do not fit either
        capacity.choose_shards(DEMO, str(capacity.needed_bytes(entries, capacity.MAX_SHARDS) - 1))
    assert str(DEMO / "time_entries.csv") in str(exc.value) and "--memory-limit" in str(exc.value)
