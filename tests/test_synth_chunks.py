"""The generator writing a practice in chunks (``synth --chunk-patients N``): one chunk is the practice made in one
piece, byte for byte; several chunks are one practice (ids unique across chunks, one staff, no staff member's entries
overlapping across chunks), reproducible, with a truth the checker meets exactly."""
import filecmp
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from ccmlib.cli import main
from ccmlib.engine.pipeline import audit
from ccmlib.errors import InputError
from ccmlib.synth.generator import generate, parse_rates

KEY = ["patient_id", "service_month", "rule_id"]


def _read(d, name):
    p = d / f"{name}.parquet"
    return pd.read_parquet(p) if p.exists() else pd.read_csv(d / f"{name}.csv", dtype=str, keep_default_na=False)


def _files(d):
    return sorted(p.name for p in d.iterdir() if p.name != "synth.json")


@pytest.mark.parametrize("fmt, entries, encounters", [("csv", (2, 4), True), ("parquet", (6, 10), True), ("csv", (2, 4), False)])
def test_one_chunk_is_the_practice_made_in_one_piece(tmp_path, fmt, entries, encounters):
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    generate(120, "2026-01..2026-03", 7, out=whole, fmt=fmt, entries=entries, encounters=encounters)
    counts = generate(120, "2026-01..2026-03", 7, out=chunked, fmt=fmt, entries=entries, encounters=encounters, chunk_patients=500)
    names = _files(whole)
    assert names == _files(chunked) and len(names) == 9
    match, mismatch, errors = filecmp.cmpfiles(whole, chunked, names, shallow=False)
    assert mismatch == [] and errors == []
    params = json.loads((chunked / "synth.json").read_text())
    assert params.pop("chunk_patients") == 500 and params.pop("chunks") == 1
    assert params == json.loads((whole / "synth.json").read_text())
    assert counts["patients"] == 120 and counts["truth"] == len(pd.read_csv(chunked / "truth.csv"))


def test_chunks_are_reproducible_and_one_practice(tmp_path):
    a, b, c, whole = tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "whole"
    generate(230, "2026-01..2026-03", 5, out=a, fmt="parquet", chunk_patients=50)  # 5 chunks, the last of 30
    generate(230, "2026-01..2026-03", 5, out=b, fmt="parquet", chunk_patients=50)
    generate(230, "2026-01..2026-03", 5, out=c, fmt="parquet", chunk_patients=60)
    generate(230, "2026-01..2026-03", 5, out=whole, fmt="parquet")
    names = _files(a)
    match, mismatch, errors = filecmp.cmpfiles(a, b, names + ["synth.json"], shallow=False)
    assert mismatch == [] and errors == []
    assert (a / "time_entries.parquet").read_bytes() != (c / "time_entries.parquet").read_bytes()
    params = json.loads((a / "synth.json").read_text())
    assert params["chunk_patients"] == 50 and params["chunks"] == 5 and "complete" not in params
    # the whole practice's staff, written once: the staff of the practice made in one piece
    assert (a / "staff.parquet").read_bytes() == (whole / "staff.parquet").read_bytes()
    t = {name: _read(a, name) for name in ("patients", "care_plans", "consents", "time_entries", "claims", "staff")}
    assert len(t["patients"]) == 230 and t["patients"]["patient_id"].is_unique
    assert t["care_plans"]["plan_id"].is_unique and t["time_entries"]["entry_id"].is_unique
    assert not t["claims"].duplicated(["claim_id", "line"]).any()
    assert (t["claims"].groupby("claim_id")["patient_id"].nunique() == 1).all()  # a claim id is never reused
    for name in ("care_plans", "consents", "time_entries", "claims"):
        assert set(t[name]["patient_id"]) <= set(t["patients"]["patient_id"])
    assert set(t["time_entries"]["staff_id"]) <= set(t["staff"]["staff_id"])
    # patients of different chunks share staff members: case managers and physicians serve the whole practice
    te = t["time_entries"].assign(chunk=t["time_entries"]["patient_id"].str[1:].astype(int).sub(1) // 50)
    assert (te.groupby("staff_id")["chunk"].nunique() > 1).sum() >= 5


def test_no_staff_member_is_in_two_places_across_chunks(tmp_path):
    """A staff member's timed entries of different patients never overlap: each chunk's day continues where the
    earlier chunks left it (the only overlaps are TIME-03's, within one patient-month)."""
    d = tmp_path / "p"
    generate(300, "2026-01..2026-02", 9, out=d, chunk_patients=40, rates=parse_rates(["0"]))
    te = _read(d, "time_entries")
    te = te[te["start_time"] != ""].copy()
    te["s"] = pd.to_timedelta(te["start_time"] + ":00").dt.total_seconds() // 60
    te["e"] = pd.to_timedelta(te["end_time"] + ":00").dt.total_seconds() // 60
    te = te.sort_values(["staff_id", "activity_date", "s"], kind="mergesort")
    prev_end = te.groupby(["staff_id", "activity_date"])["e"].shift()
    assert (te["s"] >= prev_end).where(prev_end.notna(), True).all()
    chunk = te["patient_id"].str[1:].astype(int).sub(1) // 40
    days = te.assign(chunk=chunk).groupby(["staff_id", "activity_date"])["chunk"].nunique()
    assert (days > 1).sum() > 50  # the schedule is shared for real, not by luck


@pytest.mark.parametrize("seed, months, encounters, fmt, size", [(11, "2025-08..2025-11", True, "parquet", 40),
                                                                 (13, "2025-09..2025-12", False, "csv", 70)])
def test_recall_and_precision_are_1_on_a_practice_written_in_chunks(tmp_path, seed, months, encounters, fmt, size):
    """tests/test_synth.py's recall and precision on a practice in chunks, read back from its files: IV-01 among them,
    whose truth depends on where the whole practice's visit history begins (with chunks of 40, where a chunk's own
    history begins differs from chunk to chunk)."""
    d = tmp_path / "p"
    generate(300, months, seed, rates=parse_rates(["0.03"]), out=d, fmt=fmt, encounters=encounters, chunk_patients=size)
    truth = pd.read_csv(d / "truth.csv", dtype=str)
    assert {"IV-01", "TIME-03", "BILL-01", "SUP-01", "CONS-03"} <= set(truth["rule_id"])
    found = audit(d).findings[KEY].drop_duplicates()
    tp = found.merge(truth, on=KEY).groupby("rule_id").size()
    table = pd.DataFrame({"truth": truth.groupby("rule_id").size(), "found": found.groupby("rule_id").size(), "tp": tp}).fillna(0)
    table["recall"], table["precision"] = table["tp"] / table["truth"], table["tp"] / table["found"]
    assert (table["recall"] == 1).all() and (table["precision"] == 1).all(), table[(table["recall"] < 1) | (table["precision"] < 1)]


def test_a_bad_chunk_size_is_refused_before_any_file(tmp_path):
    for bad in (0, -5, 2.5, True):
        with pytest.raises(InputError, match="--chunk-patients"):
            generate(50, out=tmp_path / "x", chunk_patients=bad)
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["synth", "--patients", "50", "--out", str(tmp_path / "y"), "--chunk-patients", "0"])
    assert r.exit_code == 2 and "--chunk-patients 0" in r.output and "at least 1" in r.output
    assert not (tmp_path / "y").exists()
    r = CliRunner().invoke(main, ["synth", "--patients", "50", "--out", str(tmp_path / "y"), "--chunk-patients", "many"])
    assert r.exit_code == 2 and "--chunk-patients" in r.output


def test_cli_chunks_over_an_earlier_practice(tmp_path):
    """Over an earlier practice (another format): its files go, the CSV ones are not appended to."""
    d = tmp_path / "p"
    generate(80, out=d, fmt="csv", seed=3)
    r = CliRunner().invoke(main, ["synth", "--patients", "80", "--seed", "3", "--out", str(d), "--format", "parquet",
                                  "--chunk-patients", "30", "--quiet"])
    assert r.exit_code == 0, r.output
    assert r.output == ""
    assert not list(d.glob("*.csv"))[1:] and (d / "truth.csv").exists()  # truth.csv alone
    assert len(_read(d, "patients")) == 80 and json.loads((d / "synth.json").read_text())["chunks"] == 3
    r = CliRunner().invoke(main, ["synth", "--patients", "80", "--seed", "3", "--out", str(d), "--chunk-patients", "30", "--quiet"])
    assert r.exit_code == 0 and not list(d.glob("*.parquet"))
    assert len(_read(d, "patients")) == 80 and len(pd.read_csv(d / "time_entries.csv")) > 80 * 3 * 2


def test_an_interrupted_practice_says_so(tmp_path, monkeypatch):
    """synth.json says "complete": false until the last chunk and truth.csv are written (the files written so far are
    closed, readable)."""
    from ccmlib.synth import generator

    made = generator._build_chunk

    def failing(*a, chunk=None, **kw):
        if chunk.index == 2:
            raise KeyboardInterrupt
        return made(*a, chunk=chunk, **kw)

    monkeypatch.setattr(generator, "_build_chunk", failing)
    d = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        generate(100, out=d, fmt="parquet", chunk_patients=30)
    assert json.loads((d / "synth.json").read_text())["complete"] is False
    assert len(pd.read_parquet(d / "patients.parquet")) == 60 and not (d / "truth.csv").exists()
