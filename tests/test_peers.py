"""The benchmark's peer sketches (benchmarks/peers/) agree with the engine on what they compute.

On a generated practice with only the time pitfalls injected (incomplete entries, non-clinical staff, overlaps, face to
face, time counted elsewhere, 99490 short of 20 minutes, 99439 beyond the minutes), each sketch, run as the benchmark
runs it (a whole process), must give the engine's qualifying minutes and 20/40/60-minute dates per patient-month, and
the engine's 99490/99439 supported units and overpayment per claim line, exactly. So the sketches cannot drift from the
engine's rules unnoticed (and what the benchmark compares stays the same work)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("duckdb", reason="the DuckDB peer needs duckdb: pip install -e '.[bench]'")
pytest.importorskip("polars", reason="the Polars peer needs polars: pip install -e '.[bench]'")

from ccmlib.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
TIME_PITFALLS = ("TIME-01", "TIME-02", "TIME-03", "TIME-04", "TIME-05", "TIME-06", "TIME-07")
PM_KEY = ["patient_id", "service_month"]
LINE_KEY = ["claim_id", "line"]
DATES = ["date_20min", "date_40min", "date_60min"]


@pytest.fixture(scope="module")
def practice(tmp_path_factory) -> dict:
    """A 200-patient quarter with only the time pitfalls, and the engine's check of it."""
    base = tmp_path_factory.mktemp("peers")
    data, run = base / "data", base / "run"
    rates = [a for p in TIME_PITFALLS for a in ("--rate", f"{p}=0.1")]
    r = CliRunner().invoke(main, ["synth", "--patients", "200", "--months", "2026-01..2026-03", "--seed", "7", "--format", "parquet",
                                  "--entries", "6-10", "--rate", "0", *rates, "--out", str(data), "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["check", str(data), "--out", str(run), "--period", "2026Q1", "--quiet"])
    assert r.exit_code == 0, r.output
    read = lambda p: pd.read_csv(p, dtype={"claim_id": str, "patient_id": str, "service_month": str})  # noqa: E731
    return {"data": data, "base": base, "pm": read(run / "patient_months.csv"), "lines": read(run / "claim_lines.csv"),
            "findings": read(run / "findings.csv")}


def test_the_practice_exercises_every_time_rule(practice):
    """Guard: the comparison below means something only if the practice has overlaps, excluded entries and lines the
    minutes do not (or only partly) support, and months that reach 60 minutes."""
    rules = set(practice["findings"]["rule_id"])
    assert set(TIME_PITFALLS) <= rules
    assert rules <= set(TIME_PITFALLS) | {"TIME-08", "TIME-09"}, "a non-time rule fired: the sketches leave those out"
    det = practice["lines"]["determination"].value_counts()
    assert det.get("not_supported", 0) > 0 and det.get("partially_supported", 0) > 0
    assert practice["pm"]["date_60min"].notna().sum() > 0


@pytest.mark.parametrize("peer", ["duckdb_core", "polars_core"])
def test_peer_agrees_with_the_engine(practice, peer):
    out, pm_out = practice["base"] / f"{peer}.csv", practice["base"] / f"{peer}_pm.csv"
    proc = subprocess.run([sys.executable, str(PEERS / f"{peer}.py"), str(practice["data"]), str(out), "--period", "2026Q1",
                           "--patient-months", str(pm_out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    sketch_pm = pd.read_csv(pm_out, dtype={"patient_id": str, "service_month": str})
    sketch_lines = pd.read_csv(out, dtype={"claim_id": str, "patient_id": str, "service_month": str})

    # qualifying minutes and threshold dates per patient-month (the sketch lists the months with time; the engine also
    # those billed without any: 0 minutes)
    eng = practice["pm"][PM_KEY + ["qualifying_minutes", *DATES]]
    m = eng.merge(sketch_pm, on=PM_KEY, how="outer", suffixes=("", "_peer"), indicator=True)
    assert (m["_merge"] != "right_only").all(), "the sketch has patient-months the engine does not"
    pd.testing.assert_series_equal(m["qualifying_minutes_peer"].fillna(0.0), m["qualifying_minutes"], check_names=False)
    for c in DATES:
        assert (m[f"{c}_peer"].fillna("") == m[c].fillna("")).all(), f"{c} differs"

    # the same CCM claim lines; 99490/99439 units supported and overpayment exactly; other codes not judged
    eng_lines = practice["lines"][LINE_KEY + ["cpt_code", "units_billed", "units_supported", "overpayment"]]
    j = eng_lines.merge(sketch_lines, on=LINE_KEY, how="outer", suffixes=("", "_peer"), indicator=True)
    assert (j["_merge"] == "both").all(), "the sketch and the engine write different claim lines"
    assert (j["cpt_code"] == j["cpt_code_peer"]).all() and (j["units_billed"] == j["units_billed_peer"]).all()
    timed = j["cpt_code"].isin(["99490", "99439"])
    assert timed.sum() > 0 and j.loc[~timed, "units_supported_peer"].isna().all()
    t = j[timed]
    pd.testing.assert_series_equal(t["units_supported_peer"].astype("int64"), t["units_supported"].astype("int64"), check_names=False)
    pd.testing.assert_series_equal(t["overpayment_peer"], t["overpayment"], check_names=False)
    assert (t["units_supported"] < t["units_billed"]).sum() > 0
