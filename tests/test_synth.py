"""The synthetic generator: deterministic, realistic enough, and the checker finds every injected pitfall."""
import filecmp
import json

import pandas as pd
import pytest

from ccmlib.audit import audit
from ccmlib.synth import PITFALLS, generate, parse_rates
from ccmlib.errors import InputError

KEY = ["patient_id", "service_month", "rule_id"]


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(60, "2026-01..2026-02", 5, out=a)
    generate(60, "2026-01..2026-02", 5, out=b)
    generate(60, "2026-01..2026-02", 6, out=c)
    names = sorted(p.name for p in a.iterdir())
    assert "truth.csv" in names and "synth.json" in names
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == []
    assert (a / "time_entries.csv").read_bytes() != (c / "time_entries.csv").read_bytes()


def test_bundled_demo_is_reproducible(tmp_path, demo_dir):
    params = json.loads((demo_dir / "synth.json").read_text())
    generate(params["patients"], params["months"], params["seed"], rates=params["rates"], out=tmp_path / "demo")
    names = sorted(p.name for p in demo_dir.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(demo_dir, tmp_path / "demo", names, shallow=False)
    assert mismatch == [] and errors == []


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_recall_100_percent_and_no_false_errors(tmp_path, seed):
    d = tmp_path / "p"
    generate(250, "2026-01..2026-04", seed, rates=parse_rates(["0.03"]), out=d)
    truth = pd.read_csv(d / "truth.csv", dtype=str)
    assert set(truth["rule_id"]) == set(PITFALLS)  # every pitfall injected at this size
    f = audit(d).findings
    found = truth.merge(f[KEY].drop_duplicates(), on=KEY, how="left", indicator=True)
    missed = found[found["_merge"] == "left_only"]
    assert missed.empty, missed
    dirty = truth[KEY[:2]].drop_duplicates().assign(dirty=True)
    errors = f[f["severity"] == "error"].merge(dirty, on=KEY[:2], how="left")
    assert errors["dirty"].notna().all(), errors[errors["dirty"].isna()]


def test_clean_practice_has_no_findings(tmp_path):
    d = tmp_path / "clean"
    generate(150, "2026-01..2026-03", 3, rates=parse_rates(["0"]), out=d)
    assert pd.read_csv(d / "truth.csv").empty
    r = audit(d)
    assert r.findings.empty
    assert (r.claim_lines["determination"] == "supported").all()


def test_rates_are_validated():
    assert parse_rates(["TIME-06=0.5"])["TIME-06"] == 0.5
    for bad in (["x"], ["NOPE-01=0.1"], ["1.5"], ["0.2"]):
        with pytest.raises(InputError):
            parse_rates(bad)
