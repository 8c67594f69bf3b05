"""Public X12 files that no one here wrote (tests/data/public, with their licences and sources in MANIFEST.csv): every
service line is a claim row or a data-quality row, 835 paid sums to the cent, no traceback, one run over all of them.

The expected counts come from MANIFEST.csv, and are checked again here by a reader that shares nothing with the one
under test: segments split on the terminator the ISA declares, elements on its element separator."""
import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

PUBLIC = Path(__file__).parent / "data" / "public"
ALL = pd.read_csv(PUBLIC / "MANIFEST.csv", dtype=str, keep_default_na=False)
MANIFEST = ALL[ALL["kind"] != "FHIR-EOB"]
FHIR = ALL[ALL["kind"] == "FHIR-EOB"]


def count(path: Path) -> dict:
    """SV1, SVC, CLM, CLP segments and the SVC03 sum of an X12 file, by plain splitting."""
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    ele, term = text[3], text[105]
    if term in "\r\n":
        text = text.replace("\r\n", term)
    out = {"SV1": 0, "SVC": 0, "CLM": 0, "CLP": 0, "paid": Decimal("0")}
    for seg in text.split(term):
        parts = seg.strip(" \t\r\n").split(ele)
        if parts[0] in out:
            out[parts[0]] += 1
        if parts[0] == "SVC" and len(parts) > 3 and parts[3]:
            out["paid"] += Decimal(parts[3])
    return out


def cli(*args):
    return run_cli(*args)  # the command in this process (conftest.run_cli): its exit code, stdout and stderr


@pytest.mark.parametrize("row", MANIFEST.to_dict("records"), ids=list(MANIFEST["local_name"]))
def test_every_service_line_is_accounted_for(tmp_path, row):
    path = PUBLIC / row["local_name"]
    c = count(path)
    assert (c["SV1"], c["SVC"], c["CLM"], c["CLP"]) == tuple(int(row[k]) for k in ("SV1", "SVC", "CLM", "CLP"))
    assert c["paid"] == Decimal(row["SVC03_sum"])
    out = tmp_path / "out"
    r = cli("ingest", path, "--out", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    doc = json.loads((out / "ingest.json").read_text())
    src = doc["sources"][0]
    assert src["reconciles"] and src["records_read"] == src["records_mapped"] + src["records_rejected"]
    claims = pd.read_csv(out / "claims.csv", dtype=str) if (out / "claims.csv").is_file() else pd.DataFrame(columns=["paid_amount"])
    dq = pd.read_csv(out / "data_quality.csv", dtype=str, keep_default_na=False)
    assert list(dq.columns[:7]) == ["table", "file", "line", "column", "problem", "value", "action"]  # the contract's layout
    lines_dq = dq[dq["table"] == "claims"]
    assert len(claims) + len(lines_dq) == c["SV1"] + c["SVC"], (len(claims), lines_dq["problem"].tolist())
    if c["SVC"]:  # 835: paid read = paid mapped + paid in rejected rows, to the cent
        paid = pd.to_numeric(claims["paid_amount"], errors="coerce").fillna(0).map(lambda v: Decimal(str(v))).sum()
        rejected = pd.to_numeric(lines_dq["paid_amount"]).map(lambda v: Decimal(str(v))).sum()
        assert Decimal(str(src["paid_read"])).quantize(Decimal("0.01")) == c["paid"]
        assert (paid + rejected).quantize(Decimal("0.01")) == c["paid"]
    if row["bom"] == "True":
        assert "UTF-8 byte-order mark skipped" in src["notes"]
    if row["version_or_profile"] == "005010X222A2":
        assert any("005010X222A2" in n for n in src["notes"])


def test_one_run_over_every_public_file(tmp_path):
    files = [PUBLIC / n for n in ALL["local_name"]]  # X12 and FHIR together
    r = cli("ingest", *files, "--out", tmp_path / "out")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "ingest.json").read_text())
    assert len(doc["sources"]) == len(files) and all(s["reconciles"] for s in doc["sources"])


def test_a_reader_crash_inside_a_file_loses_nothing(tmp_path, monkeypatch):
    """An exception where pyx12 walks the segments stops that file's walk, never the run: the claim it was in and every
    service line after it are rejected rows with the reason and their paid dollars."""
    import pyx12.x12context

    from ccmlib.intake.ingest import ingest
    real = pyx12.x12context.X12ContextReader.iter_segments

    def breaks(self):
        for i, node in enumerate(real(self)):
            if i == 40:
                raise RuntimeError("simulated pyx12 failure")
            yield node
    monkeypatch.setattr(pyx12.x12context.X12ContextReader, "iter_segments", breaks)
    nth = PUBLIC / "x12" / "oopf_835_ExampleFromNth_bom.txt"
    ing = ingest([nth, PUBLIC / "x12" / "tasty_835_profee.edi"])
    src = {Path(s["file"]).name: s for s in ing.sources}
    assert all(s["reconciles"] for s in src.values())
    stopped = ing.quality[ing.quality["problem"].str.contains("simulated pyx12 failure")]
    assert len(stopped) >= 80  # the claim the walk was in and every service line after it
    assert round(src[nth.name]["paid_mapped"] + src[nth.name]["paid_rejected"], 2) == float(count(nth)["paid"])


CPT_HCPCS = {"http://www.ama-assn.org/go/cpt", "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
             "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "urn:oid:2.16.840.1.113883.6.285"}


def eob_items(path: Path) -> list[dict]:
    """Each item of the EOBs of a file: its codes and the paid amount by the documented rule ('benefit', else
    'paidtoprovider' + 'paidtopatient'), read with json alone."""
    obj = json.loads(path.read_text(encoding="utf-8"))
    eobs = [e["resource"] for e in obj.get("entry", [])] if obj.get("resourceType") == "Bundle" else [obj]
    out = []
    for eob in eobs:
        for it in eob.get("item", []):
            amounts = {}
            for adj in it.get("adjudication", []):
                for c in adj.get("category", {}).get("coding", []):
                    if "amount" in adj:
                        amounts.setdefault(c.get("code"), Decimal(str(adj["amount"]["value"])))
            paid = amounts.get("benefit", amounts.get("paidtoprovider", Decimal(0)) + amounts.get("paidtopatient", Decimal(0)))
            coded = any(c.get("system") in CPT_HCPCS for c in it.get("productOrService", {}).get("coding", []))
            out.append({"coded": coded, "paid": paid})
    return out


@pytest.mark.parametrize("row", FHIR.to_dict("records"), ids=list(FHIR["local_name"]))
def test_every_eob_item_is_accounted_for(tmp_path, row):
    """CARIN Blue Button EOBs (CMS's Blue Button and BFD test data): each item is a claim line or its own rejected row
    with the paid dollars it holds; contained practitioners resolve; a resource the strict R4 model refuses (CMS's
    timestamps) is read with a flag, not lost."""
    path = PUBLIC / row["local_name"]
    items = eob_items(path)
    assert len(items) == int(row["items"])
    out = tmp_path / "out"
    r = cli("ingest", path, "--out", out)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    src = json.loads((out / "ingest.json").read_text())["sources"][0]
    assert src["reconciles"] and src["records_read"] == len(items)
    claims = pd.read_csv(out / "claims.csv", dtype=str) if (out / "claims.csv").is_file() else pd.DataFrame(columns=["paid_amount"])
    dq = pd.read_csv(out / "data_quality.csv", dtype=str, keep_default_na=False)
    rejected = dq[(dq["table"] == "claims") & (dq["action"] == "rejected")]
    assert len(claims) + len(rejected) == len(items)
    paid = sum(Decimal(v) for v in claims["paid_amount"].dropna()) + sum(Decimal(v) for v in rejected["paid_amount"])
    assert paid.quantize(Decimal("0.01")) == sum(i["paid"] for i in items).quantize(Decimal("0.01"))
    if row["practitioner_contained"] == "True":
        assert "1942945159" in set(claims["billing_npi"])  # the contained Practitioner's NPI, not the reference text
        assert len(claims) == sum(i["coded"] for i in items)


def test_a_transaction_bundle_keeps_its_patients(tmp_path):
    """Entries that refer to each other by fullUrl (urn:uuid:..., transaction Bundles, Synthea) are linked."""
    pat, cond = "urn:uuid:8f1c-patient", "urn:uuid:77aa-condition"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pat, "resource": {"resourceType": "Patient", "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "P77"}],
            "name": [{"family": "Doe", "given": ["Jo"]}], "birthDate": "1950-02-03", "deceasedDateTime": "2026-02-03T10:00:00Z"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": cond, "resource": {"resourceType": "Condition", "subject": {"reference": pat},
                                        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
                                        "onsetDateTime": "2020-01-01"},
         "request": {"method": "POST", "url": "Condition"}}]}
    f = tmp_path / "tx.json"
    f.write_text(json.dumps(bundle))
    r = cli("ingest", f, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    dx = pd.read_csv(tmp_path / "out" / "diagnoses.csv", dtype=str)
    assert dx[["patient_id", "icd10_code"]].values.tolist() == [["P77", "E11.9"]]
    pats = pd.read_csv(tmp_path / "out" / "patients.csv", dtype=str)
    assert pats["death_date"].tolist() == ["2026-02-03"]  # Patient.deceasedDateTime, for ELIG-03


def test_the_835_allowed_amount_is_read(tmp_path):
    """AMT*B6 of an 835 service line becomes claims.allowed_amount (with paid_amount it gives the patient's cost sharing)."""
    path = PUBLIC / "x12" / "tasty_835_profee.edi"
    text = path.read_text()
    ele, term = text[3], text[105]
    b6 = sum(Decimal(seg.strip().split(ele)[2]) for seg in text.split(term) if seg.strip().startswith(f"AMT{ele}B6{ele}"))
    r = cli("ingest", path, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    claims = pd.read_csv(tmp_path / "out" / "claims.csv", dtype=str)
    assert sum(Decimal(v) for v in claims["allowed_amount"].dropna()) == b6 and b6 > 0
