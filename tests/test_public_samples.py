"""Public X12 files that no one here wrote (tests/data/public, with their licences and sources in MANIFEST.csv): every
service line is a claim row or a data-quality row, 835 paid sums to the cent, no traceback, one run over all of them.

The expected counts come from MANIFEST.csv, and are checked again here by a reader that shares nothing with the one
under test: segments split on the terminator the ISA declares, elements on its element separator."""
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

PUBLIC = Path(__file__).parent / "data" / "public"
MANIFEST = pd.read_csv(PUBLIC / "MANIFEST.csv", dtype=str, keep_default_na=False)


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
    return subprocess.run([sys.executable, "-m", "ccmlib.cli", *map(str, args)], capture_output=True, text=True)


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
    files = [PUBLIC / n for n in MANIFEST["local_name"]]
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
