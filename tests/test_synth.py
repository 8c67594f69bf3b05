"""The synthetic generator: deterministic, realistic enough, and the checker finds every injected pitfall."""
import filecmp
import json

import pandas as pd
import pytest

from ccmlib.engine.pipeline import audit
from ccmlib.synth.generator import PITFALLS, build, generate, parse_rates
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


@pytest.mark.parametrize("seed, months, encounters", [(11, "2025-08..2025-11", True), (12, "2026-01..2026-04", True),
                                                      (13, "2025-09..2025-12", False)])
def test_recall_and_precision_per_rule_are_1_against_the_extended_truth(seed, months, encounters):
    """300 patients per seed: every pitfall injected, real shapes (several consents, re-enrolment, practitioner changes,
    facility claims, G0511 on both sides of its last day, and once an empty encounters table), and the truth lists every
    finding that follows from each pitfall; the checker must find exactly it, rule by rule."""
    from ccmlib.synth.examples import practice
    t = build(300, months, seed, parse_rates(["0.03"]), with_encounters=encounters)
    truth = t.pop("truth")
    expect = set(PITFALLS) - ({"REV-01"} if not encounters else set()) - ({"BILL-07"} if months < "2025-10" else set())
    assert expect <= set(truth["rule_id"])
    assert (t["claims"]["place_of_service"] == "22").any() and t["consents"]["patient_id"].duplicated().any()
    if months.startswith("2025-0"):
        assert (t["claims"]["cpt_code"] == "G0511").any()
    res = audit(practice({k: v.astype(str).replace({"nan": ""}).to_dict("records") for k, v in t.items()}))
    found = res.findings[KEY].drop_duplicates()
    tp = found.merge(truth, on=KEY).groupby("rule_id").size()
    table = pd.DataFrame({"truth": truth.groupby("rule_id").size(), "found": found.groupby("rule_id").size(), "tp": tp}).fillna(0)
    table["recall"], table["precision"] = table["tp"] / table["truth"], table["tp"] / table["found"]
    assert (table["recall"] == 1).all() and (table["precision"] == 1).all(), table[(table["recall"] < 1) | (table["precision"] < 1)]


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
