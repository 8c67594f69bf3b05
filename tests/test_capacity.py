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
    assert "time_entries.csv" in r.output and "GB is available" in r.output
    assert not out.exists()
    r = CliRunner().invoke(main, ["check", str(DEMO), "--out", str(out), "--period", "2026Q3", "--quiet", "--no-memory-check"])
    assert r.exit_code == 0, r.output
    assert (out / "claim_lines.csv").is_file()
