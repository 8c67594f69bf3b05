"""`ccm-audit ingest`: X12 837P/835 and FHIR R4 into a data folder (fixtures in tests/data/ingest, written from the
implementation guides and the FHIR specification; the X12 ones pass pyx12's validator)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ccmlib.errors import InputError
from ccmlib.intake.ingest import ingest
from conftest import run_cli

DATA = Path(__file__).parent / "data" / "ingest"
X12 = [DATA / "claims_jan_feb.837", DATA / "remit_2026-05.835", DATA / "remit_2026-06.835"]
FHIR = DATA / "fhir"


def _segments(path: Path) -> list[list[str]]:
    """Split an X12 file by hand (independent of pyx12): elements of each segment."""
    text = path.read_text()
    term = text[105]
    return [s.strip().split("*") for s in text.split(term) if s.strip()]


def _svc_paid(path: Path) -> float:
    return sum(float(s[3]) for s in _segments(path) if s[0] == "SVC")


@pytest.fixture(scope="module")
def x12_only():
    return ingest(X12)


@pytest.fixture(scope="module")
def everything():
    return ingest([DATA])


def _line(ing, claim, line):
    cl = ing.tables["claims"]
    hit = cl[(cl["claim_id"] == claim) & (cl["line"].astype(str) == str(line))]
    assert len(hit) == 1, f"{claim} line {line}: {len(hit)} rows"
    return hit.iloc[0]


def test_x12_counts_and_paid_amounts_reconcile_with_the_files(x12_only):
    by_file = {Path(s["file"]).name: s for s in x12_only.sources}
    for path in X12:
        s = by_file[path.name]
        segs = _segments(path)
        lines = sum(seg[0] in ("SV1", "SVC") for seg in segs)
        people = sum(seg[0] == "NM1" and seg[1] in ("IL", "QC") for seg in segs)
        dx = sum(len(seg) - 1 for seg in segs if seg[0] == "HI")
        assert s["records_read"] == lines + people + dx
        assert s["records_read"] == s["records_mapped"] + s["records_rejected"] and s["reconciles"]
        if path.suffix == ".835":
            assert s["paid_read"] == pytest.approx(_svc_paid(path))
            assert s["paid_read"] == pytest.approx(s["paid_mapped"] + s["paid_rejected"])
    # what the claims table was paid equals what the 835s paid, less the reversed payments listed as rejected
    paid_835 = sum(_svc_paid(p) for p in X12[1:])
    claims_paid = pd.to_numeric(x12_only.tables["claims"]["paid_amount"]).sum()
    rejected_paid = x12_only.quality["paid_amount"].sum()
    assert claims_paid == pytest.approx(paid_835 - rejected_paid)
    assert claims_paid == pytest.approx(42.50 + 0 + 40.00 + 100.00 + 0 + 42.50)


def test_837p_lines_matched_to_835_payments_adjustments_denials_reversals(x12_only):
    ing = x12_only
    first = _line(ing, "C1001", 1)
    assert (first["patient_id"], first["billing_npi"], first["group_npi"], first["service_date"], first["cpt_code"]) == \
        ("P1", "2610413314", "8666668347", "2026-01-31", "99490")
    assert (first["paid_amount"], first["claim_status"], first["adjustments"], first["source"]) == \
        ("42.50", "paid", "CO-45 10.88; PR-2 10.62", "837P+835")
    denied = _line(ing, "C1001", 2)
    assert (denied["paid_amount"], denied["claim_status"], denied["adjustments"]) == ("0.00", "denied", "CO-151 50.00")
    corrected = _line(ing, "C1002", 1)  # paid 42.50, reversed (CLP02 22) in June, reissued at 40.00
    assert (corrected["paid_amount"], corrected["payer_claim_id"], corrected["adjustments"]) == ("40.00", "ICN0102", "CO-45 13.38; PR-2 10.62")
    assert _line(ing, "C1002", 2)["modifiers"] == "25"
    ranged = _line(ing, "C1003", 1)  # 837P date range RD8; the 835 names the last day: matched by claim + code + date in range
    assert (ranged["source"], ranged["claim_status"], ranged["patient_id"]) == ("837P+835", "denied", "2FG5TE6MK83")
    assert _line(ing, "C1004", 1)["claim_status"] == "no remittance" and _line(ing, "C1004", 1)["paid_amount"] == ""
    alone = _line(ing, "C9001", 1)  # an 835 without its 837P stands alone as a claim line
    assert (alone["source"], alone["paid_amount"], alone["billing_npi"], alone["group_npi"]) == ("835", "42.50", "2610413314", "8666668347")
    assert "C9002" not in set(ing.tables["claims"]["claim_id"])  # paid, then reversed and not reissued
    dq = ing.quality
    rev = dq[dq["value"].str.startswith("C9002")]
    assert len(rev) == 2 and rev["problem"].str.contains("reversed").all() and rev["paid_amount"].sum() == 0
    icd9 = dq[dq["problem"].str.contains("ICD-9")]
    assert sorted(icd9["value"]) == ["C1004 HI01", "C1004 HI02"] and (icd9["line"] > 0).all()
    dx = ing.tables["diagnoses"]
    assert sorted(dx[dx["patient_id"] == "P1"]["icd10_code"]) == ["E119", "I10", "N183"]
    assert not dx["icd10_code"].isin(["25000", "4019"]).any()
    pats = ing.tables["patients"].set_index("patient_id")
    assert pats.loc["P1", "medicare_id"] == "1EG4TE5MK72" and pats.loc["P1", "birth_date"] == "1945-01-02"


def test_fhir_bundle_and_ndjson(everything):
    ing = everything
    by_file = {Path(s["file"]).name: s for s in ing.sources}
    bundle = json.loads((FHIR / "ehr_bundle.json").read_text())
    assert by_file["ehr_bundle.json"]["records_read"] == len(bundle["entry"])
    nd = FHIR / "bulk" / "Patient.ndjson"
    assert by_file["Patient.ndjson"]["records_read"] == sum(1 for ln in nd.read_text().splitlines() if ln.strip())
    assert all(s["reconciles"] for s in ing.sources)
    dq = ing.quality.set_index("value")
    assert "no ICD-10-CM coding" in dq.loc["Condition/c-3", "problem"]
    assert "Procedure is clinical" in dq.loc["Procedure/pc-1", "problem"]
    assert "patient-privacy" in dq.loc["Consent/cn-2", "problem"]
    assert "no CPT/HCPCS" in dq.loc["Encounter/e-2", "problem"]
    bad_line = ing.quality[ing.quality["file"].str.endswith("Patient.ndjson")]
    assert list(bad_line["line"]) == [2] and "not valid JSON" in bad_line["problem"].iloc[0]
    # a Claim and its ExplanationOfBenefit make one line, paid from the EOB; a lone EOB is a line of its own
    fc = _line(ing, "fc-1", 1)
    assert (fc["patient_id"], fc["paid_amount"], fc["billing_npi"], fc["source"]) == ("P2", "42.50", "2610413314", "FHIR Claim")
    assert _line(ing, "eob-2", 1)["patient_id"] == "P4"
    # patients linked across the formats: the 835-only claim's Medicare id is Linda's (NDJSON), the 837P claim without
    # a medical-record number is Richard's (Bundle)
    assert _line(ing, "C9001", 1)["patient_id"] == "P4" and _line(ing, "C1003", 1)["patient_id"] == "P2"
    cons = ing.tables["consents"].set_index("patient_id")
    assert cons.loc["P2", "revoked_date"] == "2026-02-10" and cons.loc["P1", "practitioner_npi"] == "2610413314"
    dx = ing.tables["diagnoses"]
    assert dx[(dx["patient_id"] == "P2") & (dx["icd10_code"] == "F32.9")]["resolved_date"].item() == "2025-06-01"
    staff = ing.tables["staff"].set_index("staff_id")["role"].to_dict()
    assert staff == {"pr-smith": "physician", "pr-nurse": "rn", "pr-ma": "ma"}
    assert "time_entries" in ing.tables and len(ing.tables["time_entries"]) == 5  # the practice's own CSV, copied


def test_ingest_then_check_end_to_end(tmp_path):
    data, run = tmp_path / "clinic", tmp_path / "run"
    r = run_cli("ingest", DATA, "--out", data)
    assert r.returncode == 0, r.stderr
    assert "DOES NOT RECONCILE" not in r.stdout and "remit_2026-05.835 (X12 835)" in r.stdout
    meta = json.loads((data / "ingest.json").read_text())
    assert all(s["reconciles"] and len(s["sha256"]) == 64 for s in meta["sources"])
    assert (data / "time_entries.csv").read_bytes() == (DATA / "time_entries.csv").read_bytes()  # the practice's own, as it is
    r = run_cli("check", data, "--out", run, "--quiet")
    assert r.returncode == 0, r.stderr
    f = pd.read_csv(run / "findings.csv", dtype=str)
    # recorded: the 835-only March line of Linda (P4) has 12 logged minutes and no consent
    got = set(f[(f["patient_id"] == "P4") & (f["service_month"] == "2026-03")]["rule_id"])
    assert {"CONS-01", "TIME-06", "CP-01"} <= got
    cl = pd.read_csv(run / "claim_lines.csv", dtype=str)
    assert set(cl["claim_id"]) == {"C1001", "C1002", "C1003", "C9001", "fc-1", "eob-2"}
    # into a folder it did not make, it refuses
    r = run_cli("ingest", DATA, "--out", DATA / "fhir", "--quiet")
    assert r.returncode == 2


@pytest.mark.parametrize("damage, message", [
    (lambda t: re.sub(r"IEA\*[^~]*~\n?", "", t), "IEA"),
    (lambda t: t.replace("~\nGE", "\nGE"), "segment terminator"),
    (lambda t: t[:60], "not a readable X12"),
])
def test_malformed_interchange_exits_2_naming_file_and_segment(tmp_path, damage, message):
    bad = tmp_path / "bad.835"
    bad.write_text(damage((DATA / "remit_2026-05.835").read_text()))
    out = tmp_path / "out"
    r = run_cli("ingest", bad, "--out", out)
    assert r.returncode == 2 and str(bad) in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_invalid_claim_is_rejected_whole_with_the_validator_message(tmp_path):
    text = (DATA / "claims_jan_feb.837").read_text().replace("SV1*HC:99490*64*UN*1***1~\nDTP*472*D8*20260131~\nREF*6R*C1001-1",
                                                             "SV1*HC:99490*6X4*UN*1***1~\nDTP*472*D8*20260131~\nREF*6R*C1001-1")
    src = tmp_path / "claims.837"
    src.write_text(text)
    ing = ingest([src])
    assert "C1001" not in set(ing.tables["claims"]["claim_id"]) and "C1002" in set(ing.tables["claims"]["claim_id"])
    rej = ing.quality[ing.quality["value"].str.startswith("C1001")]
    assert len(rej) == 2 + 3  # both lines and the three diagnosis codes
    assert rej["problem"].str.contains("SV1 Line Item Charge Amount").all()
    assert ing.sources[0]["reconciles"]


def test_replacement_and_void_claims(tmp_path):
    orig = (DATA / "claims_jan_feb.837").read_text()
    first = tmp_path / "a.837"
    first.write_text(orig)
    second = tmp_path / "b.837"  # the same interchange resubmitted: C1002 replaced (7), C1003 voided (8), the rest resent
    second.write_text(orig.replace("CLM*C1002*164***11:B:1", "CLM*C1002*164***11:B:7")
                      .replace("CLM*C1003*64***11:B:1", "CLM*C1003*64***11:B:8"))
    ing = ingest([first, second])
    dq = ing.quality
    problems = dict(zip(dq["file"].str[-5:] + " " + dq["value"], dq["problem"]))
    assert "replaced" in problems["a.837 C1002 line 1"] and "void claim" in problems["b.837 C1003 line 1"]
    assert "voided" in problems["a.837 C1003 line 1"]
    assert "duplicate" in problems["b.837 C1001 line 1"]
    cl = ing.tables["claims"]
    assert set(cl["claim_id"]) == {"C1001", "C1002", "C1004"} and len(cl) == 5
    assert all(s["reconciles"] for s in ing.sources)


def test_sources_that_are_not_read(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(InputError, match="notes.txt: not an X12"):
        ingest([junk])
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(X12[1], folder / "remit.835")
    (folder / "readme.txt").write_text("not data")
    ing = ingest([folder])
    assert list(ing.quality[ing.quality["action"] == "skipped"]["file"]) == [str(folder / "readme.txt")]


def test_public_samples_are_accounted_for():
    """pyx12's own 835 test file and a Synthea bulk export (tests/data/ingest_public/README.md)."""
    public = Path(__file__).parent / "data" / "ingest_public"
    ing = ingest([public])
    assert all(s["reconciles"] for s in ing.sources), ing.sources
    by_file = {Path(s["file"]).name: s for s in ing.sources}
    for name in ("Patient.000.ndjson", "Condition.000.ndjson", "Encounter.000.ndjson", "Practitioner.000.ndjson"):
        lines = [ln for ln in (public / "synthea" / name).read_text().splitlines() if ln.strip()]
        assert by_file[name]["records_read"] == len(lines)
    assert by_file["Patient.000.ndjson"]["records_mapped"] == 13 and len(ing.tables["patients"]) == 14
    assert by_file["Condition.000.ndjson"]["records_rejected"] == 40  # SNOMED CT only: not guessed
    assert "diagnoses" not in ing.tables
    assert by_file["pyx12_835_mult_loops.txt"]["records_read"] == 4  # three SVC lines and the patient
    svc = ing.quality[ing.quality["file"].str.endswith("pyx12_835_mult_loops.txt")]
    assert len(svc) == 3 and svc["problem"].str.contains("lacks billing NPI").all()


def test_an_output_folder_inside_the_source_folder_is_not_read_back(tmp_path):
    src = tmp_path / "exports"
    shutil.copytree(DATA, src)
    (src / "data").mkdir()  # an earlier ingest's output inside the exports folder: its tables are not sources
    (src / "data" / "claims.csv").write_text("claim_id,line\nX,1\n")
    (src / ".cache").mkdir()
    (src / ".cache" / "notes.json").write_text("{}")
    ing = ingest([src], exclude=src / "data")
    assert ing.copied == [src / "time_entries.csv"] and "X" not in set(ing.tables["claims"]["claim_id"])
    assert not ing.quality["file"].str.contains(".cache").any()
    with pytest.raises(InputError, match="inside the output folder"):
        ingest([src / "data" / "claims.csv"], exclude=src / "data")


def test_a_reversal_whose_payment_is_not_among_the_sources():
    """June's 835 alone: C1002's May payment is not given, so its reversal is not counted and the correction stands;
    C9002's reversal has nothing to cancel and makes no claim line."""
    ing = ingest([X12[0], X12[2]])
    assert _line(ing, "C1002", 1)["paid_amount"] == "40.00" and _line(ing, "C1002", 2)["paid_amount"] == "100.00"
    assert "C9002" not in set(ing.tables["claims"]["claim_id"])
    orphans = ing.quality[ing.quality["problem"].str.startswith("reversal of payment")]
    assert sorted(orphans["value"].str[:5]) == ["C1002", "C1002", "C9002"]
    s = {Path(x["file"]).name: x for x in ing.sources}["remit_2026-06.835"]
    assert s["reconciles"] and s["paid_rejected"] == pytest.approx(-42.5 - 100 - 42.5)


def test_the_practice_patients_table_names_the_patients_of_the_claims(tmp_path):
    """A patients.csv among the sources: its ids are the ones time entries use, so an 837P claim without a medical-record
    number takes the id whose medicare_id is its member id; the table is written once, the practice's rows first."""
    pats = tmp_path / "patients.csv"
    pats.write_text("patient_id,first_name,last_name,birth_date,medicare_id\nP2X,Richard,Roe,1940-03-15,2FG5TE6MK83\n"
                    "P9,Ann,Other,1950-01-01,\n")
    ing = ingest([X12[0], pats])
    assert _line(ing, "C1003", 1)["patient_id"] == "P2X"
    p = ing.tables["patients"]
    assert list(p["patient_id"][:2]) == ["P2X", "P9"] and p["patient_id"].is_unique and "2FG5TE6MK83" not in set(p["patient_id"])
    assert "patients" not in ing.passthrough and ing.copied == [pats]


def test_the_trail_from_source_files_to_the_report(tmp_path):
    """check on an ingested folder keeps ingest's rejected records and names the source files with their hashes; the
    report's appendices list both (issue 25)."""
    import hashlib
    import json

    from pypdf import PdfReader
    files = [DATA / "claims_jan_feb.837", DATA / "remit_2026-05.835", DATA / "remit_2026-06.835", DATA / "time_entries.csv"]
    folder = tmp_path / "ingested"
    r = run_cli("ingest", *files, "--out", folder)
    assert r.returncode == 0, r.stderr
    ing_dq = pd.read_csv(folder / "data_quality.csv", keep_default_na=False)
    r = run_cli("check", folder, "--period", "2026Q1", "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    dq = pd.read_csv(tmp_path / "run" / "data_quality.csv", keep_default_na=False)
    assert (dq["action"] == "rejected").sum() >= (ing_dq["action"] == "rejected").sum() == run["ingest"]["records_rejected"]
    hashes = {Path(s["file"]).name: s["sha256"] for s in run["ingest"]["sources"]}
    assert hashes["remit_2026-05.835"] == hashlib.sha256((DATA / "remit_2026-05.835").read_bytes()).hexdigest()
    out = tmp_path / "q1"
    r = run_cli("report", folder, "--period", "2026Q1", "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(out / "report.pdf").pages).split())
    assert "Source files the tables were built from" in text and "X12 835" in text
    assert hashes["remit_2026-05.835"][:20] in text.replace(" ", "")
    assert "could not be mapped, holding $42.50 paid and -$42.50 in reversals" in text.replace("\u2011", "-")


def test_837p_diagnoses_travel_with_the_claim_lines(tmp_path):
    """Each 837P line carries its claim's ICD-10-CM HI codes (claims.diagnosis_codes), which DX-01 reads; ICD-9 codes do not."""
    from ccmlib.intake.ingest import ingest
    ing = ingest([DATA / "claims_jan_feb.837"])
    cl = ing.tables["claims"].set_index(["claim_id", "line"])
    assert cl.loc[("C1001", "1"), "diagnosis_codes"] == "E119;I10;N183"
    assert pd.isna(cl.loc[("C1004", "1"), "diagnosis_codes"]) or cl.loc[("C1004", "1"), "diagnosis_codes"] == ""  # ICD-9 only
