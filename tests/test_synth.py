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
    facility claims, G0511 on both sides of its last day, and once an empty encounters table; the v3 shapes: signatures
    and attestations, deaths, claim diagnoses, allowed and paid amounts, denied lines, APCM), and the truth lists every
    finding that follows from each pitfall (ELIG-03, DX-01, DOC-01, DOC-02, BILL-08 and TIME-10 among them); the checker
    must find exactly it, rule by rule."""
    from ccmlib.synth.examples import practice
    t = build(300, months, seed, parse_rates(["0.03"]), with_encounters=encounters)
    truth = t.pop("truth")
    expect = set(PITFALLS) - ({"REV-01"} if not encounters else set()) - ({"BILL-07"} if months < "2025-10" else set())
    expect -= {"TIME-10"} if months > "2025-09" else set()  # G0511 stood for any care management up to 30 Sep 2025
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


def _audit(tables):
    from ccmlib.synth.examples import practice
    return audit(practice({k: v.astype(str).replace({"nan": ""}).to_dict("records") for k, v in tables.items()}))


def test_catalog_v3_shapes_and_their_near_misses():
    """The v3 shapes are there at small default rates, and each near miss stays clean: an attested plan, the month of
    death, APCM by another practitioner, a claim listing two chronic conditions carry no finding; Medicare paid 80 % of
    the allowed amount less 2 % sequestration (2026 non-facility 99490: allowed $66.13, paid $51.85)."""
    t = build(1500, "2025-12..2026-03", 7, parse_rates(None))
    truth = t.pop("truth")
    f = _audit(t).findings
    plans, pats, claims, te = t["care_plans"], t["patients"], t["claims"], t["time_entries"]
    month = claims["service_date"].str[:7]
    # care plans: signed by default; stamped, unsigned and late-signed plans cured by an attestation find nothing
    assert (plans["signature_method"] == "electronic").mean() > 0.7 and (plans["signature_method"] == "handwritten").any()
    cured = plans[(plans["attested_date"] != "") & ((plans["signed_by"] == "") | (plans["signature_method"] == "stamp")
                                                    | (plans["signed_date"] > "2026-03-31"))]
    assert cured["signed_by"].eq("").any() and cured["signature_method"].eq("stamp").any() and cured["signed_date"].gt("2026-03-31").any()
    plan_findings = f[f["rule_id"].str.startswith("DOC") & f["message"].str.startswith("care plan")]
    assert not plan_findings["patient_id"].isin(cured["patient_id"]).any()
    unsigned = plans[(plans["attested_date"] == "") & ((plans["signed_by"] == "") | (plans["signature_method"] == "stamp"))]
    assert len(unsigned) and set(unsigned["patient_id"]) == set(f.loc[f["rule_id"] == "DOC-01", "patient_id"])
    assert (te["signed_by"] == te["staff_id"]).mean() > 0.99 and (te["signed_by"] == "").any()
    # deaths: the month of death is billed without a finding; after it, nothing unless ELIG-03 is the pitfall
    dead = pats[pats["death_date"] != ""].set_index("patient_id")["death_date"]
    assert 8 <= len(dead) <= 60
    c = claims[claims["patient_id"].isin(dead.index)].assign(death=lambda d: d["patient_id"].map(dead))
    assert (c["service_date"].str[:7] == c["death"].str[:7]).any()
    after = c[c["service_date"].str[:7] > c["death"].str[:7]]
    e3 = f[f["rule_id"] == "ELIG-03"]
    assert len(e3) and set(after["patient_id"]) == set(e3["patient_id"])
    assert not f[(f["rule_id"] == "ELIG-03") & (f["service_month"] == f["patient_id"].map(dead).str[:7])].shape[0]
    # claims: diagnosis codes on every line, the denied ones paid and allowed 0, APCM and its add-ons, 99491 with 99490
    assert (claims["diagnosis_codes"] != "").all()
    assert ((claims["paid_amount"] == 0) == (claims["allowed_amount"] == 0)).all() and (claims["paid_amount"] == 0).any()
    priced = claims[(claims["paid_amount"] > 0) & (claims["service_date"] >= "2026-01-01")]
    assert ((priced["allowed_amount"] * 0.8 * 0.98).round(2) - priced["paid_amount"]).abs().max() < 0.006
    n99490 = claims[(claims["cpt_code"] == "99490") & (claims["place_of_service"] == "11") & (claims["service_date"] >= "2026-01-01")]
    assert set(n99490.loc[n99490["paid_amount"] > 0, ["allowed_amount", "paid_amount"]].itertuples(index=False)) == {(66.13, 51.85)}
    codes = set(claims["cpt_code"])
    assert codes & {"G0556", "G0557", "G0558"} and codes & {"G0568", "G0569", "G0570"} and "G0181" in codes
    assert month[claims["cpt_code"].isin(["G0568", "G0569", "G0570"])].min() >= "2026-01"
    pm = claims.assign(m=month).groupby(["patient_id", "m"])["cpt_code"].agg(set)
    assert pm.map(lambda s: {"99491", "99490"} <= s).any()
    apcm_pm = claims[claims["cpt_code"].isin(["G0556", "G0557", "G0558"])][["patient_id", "billing_npi"]].assign(m=month)
    ccm_pm = claims[claims["cpt_code"] == "99490"][["patient_id", "billing_npi"]].assign(m=month)
    other = apcm_pm.merge(ccm_pm, on=["patient_id", "m"], suffixes=("", "_ccm"))
    other = other[other["billing_npi"] != other["billing_npi_ccm"]]
    assert len(other) and not f[(f["rule_id"] == "BILL-03") & f["patient_id"].isin(other["patient_id"])].shape[0]
    # the v3 rules are in the truth, and found exactly
    for rule in ("DOC-01", "DOC-02", "ELIG-03", "DX-01", "BILL-08", "BILL-03", "BILL-04"):
        want = truth[truth["rule_id"] == rule][KEY]
        got = f[f["rule_id"] == rule][KEY].drop_duplicates()
        assert len(want) and len(want.merge(got)) == len(want) == len(got), rule


def test_g0511_without_ccm_time():
    """TIME-10: an RHC's G0511 in a month with no time entries at all (2024 to 30 Sep 2025), found as such."""
    t = build(400, "2025-07..2025-09", 8, parse_rates(["TIME-10=0.05"]))
    truth = t.pop("truth")
    months = truth.loc[truth["rule_id"] == "TIME-10", ["patient_id", "service_month"]]
    assert len(months)
    te = t["time_entries"].assign(service_month=lambda d: d["activity_date"].str[:7])
    assert not len(months.merge(te, on=["patient_id", "service_month"]))
    c = t["claims"].assign(service_month=lambda d: d["service_date"].str[:7]).merge(months)
    assert set(c["cpt_code"]) <= {"G0511", "G0506", "99214", "99215", "G0439"} and "G0511" in set(c["cpt_code"])
    f = _audit(t).findings
    got = f[f["rule_id"] == "TIME-10"][["patient_id", "service_month"]].drop_duplicates()
    assert len(got.merge(months)) == len(months) == len(got)
    assert not len(f[f["rule_id"] == "TIME-06"].merge(months))
