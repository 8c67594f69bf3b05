"""The monthly pre-bill review: what it calls ready passes `check`, what it calls blocked fails `check` for the rule it
named, and only documentation dated by the as-of date counts."""
import re

import numpy as np
import pandas as pd
import pytest
from chart import chart, entry

from ccmlib.engine.pipeline import audit
from ccmlib.engine.prebill import PROPOSED, prebill
from ccmlib.intake.load import Practice, load_practice
from ccmlib.reference.codes import CCM_CODES
from ccmlib.synth.examples import practice


def row(pb, patient="P1"):
    w = pb.worklist
    return w[w["patient_id"] == patient].iloc[0]


def lines_for(codes: str) -> list[tuple[str, int]]:
    """'99490+99439x2' -> [('99490', 1), ('99439', 2)]."""
    out = []
    for part in filter(None, codes.split("+")):
        m = re.fullmatch(r"(\w+?)(?:x(\d+))?", part)
        out.append((m.group(1), int(m.group(2) or 1)))
    return out


def with_claims(p: Practice, rows: pd.DataFrame) -> Practice:
    tables = dict(p.tables)
    rows = rows.reindex(columns=p["claims"].columns)  # optional columns the rows do not name stay blank
    tables["claims"] = pd.concat([p["claims"], rows.astype(p["claims"].dtypes.to_dict())], ignore_index=True)
    return Practice(p.folder, tables, p.quality, p.inputs)


# ----------------------------------------------------------------- the property, over generated practices
@pytest.fixture(scope="module", params=[23])
def generated(request, tmp_path_factory):
    from ccmlib.synth.generator import generate
    out = tmp_path_factory.mktemp(f"gen{request.param}") / "practice"
    generate(patients=90, months="2026-01..2026-03", seed=request.param, out=out)
    return load_practice(out)


@pytest.mark.parametrize("month", ["2026-01", "2026-03"])
def test_ready_passes_check_and_blocked_fails_it_for_the_named_rule(generated, month):
    start = pd.Timestamp(month + "-01")
    end = start + pd.offsets.MonthEnd(0)
    cl = generated["claims"]
    in_month = cl["cpt_code"].isin(list(CCM_CODES)) & (cl["service_date"] >= start) & (cl["service_date"] <= end)
    tables = dict(generated.tables)
    tables["claims"] = cl[~in_month].reset_index(drop=True)  # the month not billed yet
    unbilled = Practice(generated.folder, tables, generated.quality, generated.inputs)
    pb = prebill(unbilled, month, as_of=end.date())
    w = pb.worklist
    ready, blocked = w[w["status"] == "ready to bill"], w[w["status"] == "blocked"]
    assert len(ready) and len(blocked), w["status"].value_counts()

    # bill exactly what is ready, by the practitioner named, on the month's last day
    rows = [{"claim_id": f"R-{r.patient_id}", "line": i, "patient_id": r.patient_id, "billing_npi": r.billing_npi,
             "service_date": end, "cpt_code": code, "units": units, "paid_amount": np.nan, "place_of_service": pd.NA, "_line": 0}
            for r in ready.itertuples() for i, (code, units) in enumerate(lines_for(r.codes_ready), 1)]
    res = audit(with_claims(unbilled, pd.DataFrame(rows)), period=month)
    got = res.claim_lines[res.claim_lines["claim_id"].astype(str).str.startswith("R-")]
    assert len(got) == len(rows)
    assert (got["determination"] == "supported").all() and (got["rule_ids"] == "").all(), got[got["rule_ids"] != ""]
    f = res.findings
    bad = f[f["patient_id"].isin(ready["patient_id"]) & (f["severity"] == "error") & f["rule_id"].str.match(r"(TIME|BILL|CONS)-")]
    assert bad.empty, bad[["patient_id", "rule_id", "message"]]

    # bill what the blocked patients' minutes support: check takes those lines down for the rules the worklist named
    prop = pb.proposed[pb.proposed["patient_id"].isin(blocked["patient_id"])]
    res = audit(with_claims(unbilled, prop), period=month)
    got = res.claim_lines[res.claim_lines["claim_id"].astype(str).str.startswith(PROPOSED)]
    named = dict(zip(blocked["patient_id"], blocked["blocking_rules"]))
    for r in got.itertuples():
        rules = set(filter(None, r.rule_ids.split(";")))
        assert r.determination != "supported" and set(named[r.patient_id].split(";")) <= rules, (r.patient_id, r.rule_ids,
                                                                                                   named[r.patient_id])

    # a month short of minutes fails check for the time thresholds and nothing else
    short = w[w["status"] == "needs minutes"]
    res = audit(with_claims(unbilled, pb.proposed[pb.proposed["patient_id"].isin(short["patient_id"])]), period=month)
    got = res.claim_lines[res.claim_lines["claim_id"].astype(str).str.startswith(PROPOSED)]
    taken = {r for v in got["rule_ids"] for r in v.split(";") if r}
    assert len(short) == 0 or (taken and taken <= {"TIME-06", "TIME-07", "TIME-08", "TIME-09"}), taken


# ----------------------------------------------------------------- the as-of cut
def test_an_entry_dated_after_the_as_of_date_does_not_count():
    t = chart()  # 15 minutes on Jan 6, 13 on Jan 13
    t["time_entries"][1]["activity_date"] = "2026-01-25"
    t["claims"] = []
    early = row(prebill(practice(t), "2026-01", as_of="2026-01-20"))
    assert (early["status"], early["qualifying_minutes"], early["minutes_needed"], early["days_left"]) == ("needs minutes", 15, 5, 11)
    late = row(prebill(practice(t), "2026-01", as_of="2026-01-31"))
    assert (late["status"], late["codes_ready"], late["qualifying_minutes"]) == ("ready to bill", "99490", 28)
    assert late["next_threshold"] == 40 and late["minutes_needed"] == 12


def test_twenty_minutes_reached_on_the_last_day():
    t = chart()
    t["time_entries"] = [entry("E1", 15, date="2026-01-10"), entry("E2", 5, date="2026-01-31")]
    t["claims"] = []
    assert row(prebill(practice(t), "2026-01", as_of="2026-01-30"))["status"] == "needs minutes"
    last = row(prebill(practice(t), "2026-01", as_of="2026-01-31"))
    assert (last["status"], last["codes_ready"], last["days_left"]) == ("ready to bill", "99490", 0)


def test_a_consent_signed_mid_month_counts_only_the_time_after_it():
    t = chart()
    t["consents"][0]["consent_date"] = "2026-01-15"
    t["care_plans"][0]["created_date"] = "2026-01-15"
    t["time_entries"] = [entry("E1", 10, date="2026-01-05"), entry("E2", 25, date="2026-01-20")]
    t["claims"] = []
    before = row(prebill(practice(t), "2026-01", as_of="2026-01-10"))
    assert before["status"] == "not enrolled" and "consent" in before["action"].lower()
    after = row(prebill(practice(t), "2026-01", as_of="2026-01-31"))
    assert (after["status"], after["qualifying_minutes"], after["excluded_minutes"]) == ("ready to bill", 25, 10)
    assert "before consent" in after["excluded_because"]


def test_a_consent_revoked_before_the_month_is_not_enrolled_and_a_later_revocation_has_not_happened_yet():
    t = chart()
    t["claims"] = []
    t["consents"][0]["revoked_date"] = "2025-12-20"
    assert row(prebill(practice(t), "2026-01", as_of="2026-01-31"))["status"] == "not enrolled"
    t["consents"][0]["revoked_date"] = "2026-02-10"  # after the as-of date: not known yet
    assert row(prebill(practice(t), "2026-01", as_of="2026-01-31"))["status"] == "ready to bill"


def test_blocked_says_why_and_what_fixes_it_and_billed_claims_keep_their_verdict():
    t = chart()
    t["claims"] = []
    t["consents"][0]["informed_cost_sharing"] = "no"
    r = row(prebill(practice(t), "2026-01", as_of="2026-01-31"))
    assert (r["status"], r["blocking_rules"]) == ("blocked", "CONS-02")
    assert "disclosures" in r["blocking"] and "consent template" in r["fixes"] and r["codes_ready"] == ""
    t = chart()  # billed on Jan 31 with 28 minutes: supported
    r = row(prebill(practice(t), "2026-01", as_of="2026-01-31"))
    assert (r["status"], r["codes_billed"], r["billed_verdict"]) == ("billed", "99490", "supported")


def test_month_and_as_of_are_checked():
    from ccmlib.errors import InputError
    with pytest.raises(InputError, match="one month"):
        prebill(practice(chart()), "2026Q1", as_of="2026-01-31")
    with pytest.raises(InputError, match="outside 2026-01"):
        prebill(practice(chart()), "2026-01", as_of="2026-02-01")


def test_cli_writes_the_worklist_and_the_csv(tmp_path):
    from conftest import DEMO, run_cli
    out = tmp_path / "prebill"
    r = run_cli("prebill", DEMO, "--month", "2026-09", "--as-of", "2026-09-20", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ready to bill" in r.stdout
    w = pd.read_csv(out / "prebill.csv", dtype=str)
    assert set(w["status"]) <= {"ready to bill", "needs minutes", "blocked", "billed", "billed with problems", "not enrolled"}
    from pypdf import PdfReader
    pdf = PdfReader(out / "worklist.pdf")
    assert len(pdf.pages) <= 2  # the whole list when it fits two pages (issue 26)
    text = " ".join(pg.extract_text() for pg in pdf.pages)
    todo = w["status"].isin(["blocked", "needs minutes", "billed with problems", "not enrolled"]).sum()
    assert ("more, each with its action, in prebill.csv" in text) is bool(todo > 60)
    assert "pre-bill review" in text and not set(w["patient_id"]) & set(re.findall(r"P\d{6}", text))  # keys, not ids
    cw = pd.read_csv(out / "crosswalk.csv", dtype=str)
    assert set(cw["patient_id"]) == set(w["patient_id"])
    r = run_cli("prebill", DEMO, "--month", "2026-13", "--out", tmp_path / "x")
    assert r.returncode == 2 and "2026-13" in r.stderr


def test_a_facility_claim_is_priced_as_check_prices_it():
    """Dollars at stake of a patient whose claims are billed from a facility (place of service 22) are the facility
    rate, the price `check` gives the same line (issue 23: the pre-bill priced them at the non-facility rate)."""
    from ccmlib.engine.money import unit_values
    from ccmlib.reference import data as refdata
    from conftest import demo_prebill
    pb = demo_prebill("2026-07", as_of="2026-07-20")
    prop = pb.proposed[pb.proposed["place_of_service"] == "22"]
    assert len(prop)
    fees, _ = refdata.fee_schedule(None)
    check_price = unit_values(prop, fees)  # the pricing `check` applies to its claim lines
    assert set(check_price["fee_setting"]) == {"facility"}
    expected = (check_price["allowed_unit"] * prop["units"].to_numpy()).groupby(prop["patient_id"].astype(str).to_numpy()).sum().round(2)
    got = pb.worklist.set_index("patient_id").loc[expected.index, "dollars_at_stake"]
    assert (got.to_numpy() == expected.to_numpy()).all() and 43.76 in set(got)
    lines = pb.audit.claim_lines
    assert set(lines.loc[lines["claim_id"].isin(prop["claim_id"]), "fee_setting"]) == {"facility"}


def test_the_worklist_is_in_the_order_to_act_on_it():
    """After month end the claims billed with problems come first and the months that ended short (nothing to do) last;
    before it, the patients closest to a threshold lead the 'needs minutes' rows (issue 26)."""
    from conftest import demo_prebill
    closed = demo_prebill("2026-08").worklist  # a past month: as of its last day
    assert (closed["days_left"] == 0).all()
    n = int((closed["status"] == "billed with problems").sum())
    assert n and (closed["status"].iloc[:n] == "billed with problems").all()
    assert closed["dollars_at_stake"].iloc[:n].is_monotonic_decreasing
    short = closed.index[closed["status"] == "needs minutes"]
    assert not len(short) or short.min() > closed.index[closed["status"] != "needs minutes"].max()
    open_ = demo_prebill("2026-09", as_of="2026-09-20").worklist
    need = open_[open_["status"] == "needs minutes"]
    assert len(need) > 1 and need["minutes_needed"].is_monotonic_increasing
    one = need[need["minutes_needed"] == 1]
    assert one.empty or one["action"].iloc[0].startswith("Needs 1 more qualifying minute (")
