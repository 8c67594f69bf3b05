"""Synthetic practices in the data-contract layout, with injected pitfalls and their ground truth.

``generate()`` is vectorized with numpy (no per-row Python), so that it can also make the
benchmark practices. Each patient gets at most one patient-level pitfall; each patient-month of a
patient without one gets at most one month-level pitfall; ``truth.csv`` lists, for every injected
pitfall, each (patient_id, service_month, rule_id) the checker must report, including the findings
that follow from it (a revoked consent also excludes the month's time, so TIME-06 follows; a second
practitioner billing the month also lacks a consent and an initiating visit). Everything is derived
from the seed: same arguments, same bytes.

Shapes of real practices, clean unless a pitfall says otherwise (version 2): an older practice-level
consent beside the practitioner's own, revocations long before the period with re-enrolment,
practitioner changes with a new consent and visit, CCM billed from a hospital outpatient setting
(place of service 22, facility amounts), rural health clinic patients billing G0511 up to its last
day, and on request an empty encounters table.

Catalog v3 shapes (version 3), drawn from their own random stream so that the v2 shapes of a seed move as little as
possible (its patients, diagnoses, consents and visits stay as they were): care plans signed electronically or by
hand, some unsigned, stamped or signed late and cured by the author's attestation (no finding); time entries signed
by their author; deaths (the month of death billed, nothing after); each claim line's own diagnosis codes (claims.diagnosis_codes); the allowed amount and Medicare's payment on every line
(paid = 80 % of the allowed amount less the sequestration in force); APCM billed by another practitioner in a CCM
month (allowed). Pitfalls: unsigned or stamped care plans (DOC-01), an unsigned time entry (DOC-02), months billed after
the patient's death (ELIG-03), claims listing one chronic condition (DX-01), denied lines (BILL-08), 99491 with 99490
(BILL-04), APCM and its behavioral-health add-ons in a CCM month (BILL-03, dated), RHC G0511 with no CCM time (TIME-10).
The initiating visit as v3 reads it (its own stream): the visit history starts late (the encounters table begins 800
days before the period, after some patients' windows begin: IV-01 not assessed for them, no finding), some initiating
visits are only on the claims table (an E/M line, no encounters row), and on request no visit evidence at all (an empty
encounters table and no visit claims: IV-01 in every billed month).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib import paths
from ccmlib.reference import data as refdata
from ccmlib.errors import InputError
from ccmlib.intake.schema import CARE_PLAN_ELEMENTS
from ccmlib.engine.periods import key_end, key_start, key_to_label, month_key

DEFAULT_RATE = 0.02
#: default rates that differ from DEFAULT_RATE: billing after death and unsigned care plans are rarer than the rest
DEFAULT_RATES = {"ELIG-03": 0.01, "DOC-01": 0.01}
SYNTH_VERSION = "3"

#: patient-level pitfalls: every billed month of the patient (CONS-03: months after the revocation;
#: CONS-05: the first month; ELIG-03: months after the death) is in the truth
PATIENT_PITFALLS = ("ELIG-01", "ELIG-02", "CONS-01", "CONS-02", "CONS-03", "CONS-04", "CONS-05", "CONS-06",
                    "IV-01", "CP-01", "CP-02", "CP-03", "CP-04", "CP-05", "CP-06", "ELIG-03", "DOC-01")
MONTH_PITFALLS = ("TIME-01", "TIME-02", "TIME-03", "TIME-04", "TIME-05", "TIME-06", "TIME-07", "TIME-08", "TIME-09",
                  "BILL-01", "BILL-02", "BILL-03", "BILL-04", "BILL-05", "BILL-06", "BILL-07", "SUP-01", "REV-01",
                  "TIME-10", "BILL-08", "DX-01", "DOC-02")
PITFALLS = PATIENT_PITFALLS + MONTH_PITFALLS
#: BILL-03's conflicting codes as the generator bills them: home health supervision (always), APCM (from 2025), the APCM
#: behavioral-health add-ons (from 2026); the dates themselves are the engine's reference data (reference/conflicts.csv)
APCM, APCM_BHI = ("G0556", "G0557", "G0558"), ("G0568", "G0569", "G0570")
CCM_FAMILY = ("99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511")

CHRONIC = {  # category -> codes (all valid ICD-10-CM, one CCW category each)
    "diabetes": ["E11.9", "E11.65"], "hypertension": ["I10"], "hyperlipidemia": ["E78.5", "E78.00"],
    "ckd": ["N18.30", "N18.4"], "copd": ["J44.9"], "asthma": ["J45.909"], "heart_failure": ["I50.9", "I50.22"],
    "afib": ["I48.91"], "ihd": ["I25.10"], "depression": ["F33.1", "F32.A"], "hypothyroidism": ["E03.9"],
    "arthritis": ["M17.11", "M19.90"], "osteoporosis": ["M81.0"], "glaucoma": ["H40.9"], "bph": ["N40.0"],
    "anemia": ["D50.9"], "dementia": ["F03.90"], "obesity": ["E66.9"], "chronic_pain": ["G89.29"], "pvd": ["I73.9"],
}
ACUTE = ["J06.9", "R05.9", "Z86.73", "S52.501A", "J18.9", "H25.9", "R53.83"]
INVALID = ["I10.9", "E11.99", "J44.99", "Z99.999"]
# distinctive names, so that a scan for them in a rendered report cannot hit ordinary words
FIRST = np.array("Philomena Evangeline Bartholomew Wilhelmina Leopoldine Casimir Ottoline Thaddeus Griselda Ambrosius "
                 "Perpetua Florentin Hildegard Cornelius Euphemia Barnabas Clementine Ignatius Seraphina Augustin "
                 "Rosalind Ptolemy Henrietta Lysander Gwendolyn".split())
LAST = np.array("Quackenbush Vanderpool Ollivander Featherstonehaugh Bickerstaff Throckmorton Winterbottom Abernethy "
                "Kowalczyk Zimmerhofer Montgomerie Pettigrew Ravensworth Oyelaran Nakashima Castellanos Brightwater "
                "Szczepanski Underhill Fitzwilliam Okonkwo Villalobos Haverford Lindqvist Marchbanks".split())
#: staff names: their own pools, so that no staff name shares a word with a patient's (the reports' PHI tests look for
#: patients' names)
STAFF_FIRST = np.array("Avery Jordan Morgan Riley Casey Quinn Harper Rowan Emerson Sawyer Reese Dakota".split())
STAFF_LAST = np.array("Okafor Sorensen Tanaka Moreau Achebe Nakamura Abernathy-Cole Valdivia Iyer Brennan Mwangi "
                      "Haddad".split())
ACTIVITIES = {
    "medication_reconciliation": ["Reconciled medication list after specialist visit", "Reviewed pill box setup with caregiver",
                                  "Resolved duplicate statin prescriptions with pharmacy"],
    "care_coordination": ["Coordinated home health referral", "Arranged transport to nephrology appointment",
                          "Sent updated plan to cardiology"],
    "lab_review": ["Reviewed A1c and lipid results, messaged patient", "Reviewed BMP, flagged potassium for physician"],
    "care_plan_update": ["Updated care plan goals after ED visit", "Revised symptom action plan with patient"],
    "patient_call": ["Called patient about blood pressure log", "Called patient re inhaler technique and refills"],
    "scheduling": ["Scheduled diabetic eye exam", "Scheduled follow-up labs and visit"],
}


def parse_rates(items) -> dict[str, float]:
    """``["0.05", "TIME-06=0.1"]`` -> a rate per pitfall (the bare number sets every pitfall)."""
    rates = {p: DEFAULT_RATES.get(p, DEFAULT_RATE) for p in PITFALLS}
    for item in items or ():
        key, _, val = str(item).rpartition("=")
        try:
            p = float(val)
        except ValueError:
            raise InputError(f"--rate {item!r}: expected a number like 0.05 or RULE=0.05") from None
        if not 0 <= p <= 1:
            raise InputError(f"--rate {item!r}: a rate is between 0 and 1")
        if key:
            key = key.strip().upper()
            if key not in rates:
                raise InputError(f"--rate {item!r}: {key} is not an injectable pitfall ({', '.join(PITFALLS)})")
            rates[key] = p
        else:
            rates = {k: p for k in rates}
    for group, name in ((PATIENT_PITFALLS, "patient-level"), (MONTH_PITFALLS, "month-level")):
        if sum(rates[g] for g in group) > 1:
            raise InputError(f"the {name} pitfall rates add up to more than 1; lower them")
    return rates


def _months(spec: str) -> list[int]:
    m = re.fullmatch(r"\s*(\d{4})-(\d{2})\s*(?:\.\.\s*(\d{4})-(\d{2}))?\s*", spec or "")
    if not m:
        raise InputError(f"--months {spec!r}: expected FIRST..LAST like 2026-01..2026-03")
    a = int(m.group(1)) * 12 + int(m.group(2)) - 1
    b = int(m.group(3)) * 12 + int(m.group(4)) - 1 if m.group(3) else a
    if b < a or not (1 <= int(m.group(2)) <= 12):
        raise InputError(f"--months {spec!r}: not a valid month range")
    return list(range(a, b + 1))


def _npi(base: np.ndarray) -> np.ndarray:
    """10-digit NPIs with a valid Luhn check digit (prefix 80840), from 9-digit bases."""
    digits = np.array([[int(c) for c in f"{b:09d}"] for b in base]) if len(base) else np.zeros((0, 9), int)
    total = np.full(len(base), 24)  # contribution of the 80840 prefix
    for i in range(9):
        d = digits[:, 8 - i]
        total = total + (np.where(d * 2 > 9, d * 2 - 9, d * 2) if i % 2 == 0 else d)
    check = (10 - total % 10) % 10
    return np.array([f"{b:09d}{c}" for b, c in zip(base, check)])


def _choice(rng, options, n):
    return np.asarray(options)[rng.integers(0, len(options), n)]


def _pick_pitfall(rng, n, names, rates):
    p = np.array([rates[k] for k in names])
    cats = np.append(np.array(names, dtype=object), "")
    return cats[rng.choice(len(cats), size=n, p=np.append(p, 1 - p.sum()))]


def _date(s) -> pd.Series:
    return pd.Series(pd.to_datetime(s)).dt.strftime("%Y-%m-%d")


def generate(patients: int = 200, months: str = "2026-01..2026-03", seed: int = 1, rates: dict | None = None,
             out: str | Path | None = None, fmt: str = "csv", progress: bool = False, entries: tuple[int, int] = (2, 4),
             encounters: bool = True, chunk_patients: int | None = None) -> dict:
    """Make a synthetic practice; write it to ``out`` when given. Returns row counts per table.

    ``entries`` is the (fewest, most) time entries logged per patient-month. ``chunk_patients``: make and write the
    practice that many patients at a time (``out`` required), so that memory is bounded by the chunk, not the practice;
    see ``_generate_in_chunks``."""
    if chunk_patients is not None:
        return _generate_in_chunks(patients, months, seed, rates or parse_rates(None), out, fmt, progress, entries,
                                   encounters, chunk_patients)
    if out is not None:
        _check_synth_out(Path(out))
    tables = build(patients, months, seed, rates or parse_rates(None), entries, encounters)
    if out is not None:
        params = {"patients": patients, "months": months, "seed": seed, "rates": rates or parse_rates(None), "synth_version": SYNTH_VERSION}
        if tuple(entries) != (2, 4):
            params["entries"] = list(entries)
        if not encounters:
            params["encounters"] = False
        write(tables, Path(out), fmt, params, progress)
    return {k: len(v) for k, v in tables.items()}


TABLE_NAMES = ("patients", "diagnoses", "consents", "care_plans", "staff", "time_entries", "claims", "encounters", "truth")


def _generate_in_chunks(patients, months, seed, rates, out, fmt, progress, entries, encounters, chunk_patients) -> dict:
    """A practice made and written ``chunk_patients`` patients at a time: each chunk's rows appended to the files
    (Parquet: a row group or more per chunk; CSV: no second header), so memory is bounded by the chunk.

    The chunks form one practice: patient, care plan, claim and time entry ids run on across chunks; the staff is the
    whole practice's (drawn for all patients, written once) and a staff member's day continues where an earlier chunk
    left it (no overlaps across chunks); truth.csv is written last, once where the whole practice's visit history
    begins is known. The first chunk draws from the seed's own streams, so a practice in one chunk has the bytes of the
    practice made in one piece; later chunks from streams of their own (same seed and chunk size, same bytes).
    synth.json records the chunk size and count; while the practice is being written it says ``"complete": false``."""
    if isinstance(chunk_patients, bool) or not isinstance(chunk_patients, (int, np.integer)) or chunk_patients < 1:
        raise InputError(f"--chunk-patients {chunk_patients!r}: give the number of patients per chunk, a whole number of "
                         f"at least 1 (e.g. 100000: a chunk of 100,000 patients over 3 months with 6-10 entries needs about 3 GB)")
    if out is None:
        raise InputError("a practice written in chunks needs a folder to write to (--out)")
    out = Path(out)
    _check_synth_out(out)
    _check_entries(entries)
    _months(months)
    chunk_patients = int(chunk_patients)
    n_chunks = -(-patients // chunk_patients)
    params = {"patients": patients, "months": months, "seed": seed, "rates": rates, "synth_version": SYNTH_VERSION,
              "chunk_patients": chunk_patients, "chunks": n_chunks}
    if tuple(entries) != (2, 4):
        params["entries"] = list(entries)
    if not encounters:
        params["encounters"] = False
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLE_NAMES:  # an earlier practice's files: the CSV ones would be appended to
        for ext in ("csv", "parquet"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)
    _write_params(out, {**params, "complete": False})
    state = _Chunk(patients, months)
    sink = _Appender(out, fmt, several=n_chunks > 1)
    counts = dict.fromkeys(TABLE_NAMES, 0)
    parts = []
    chunks = range(n_chunks)
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc=f"synth in chunks of {chunk_patients:,} patients", unit="chunk", disable=paths.progress_off())
    try:
        for c in chunks:
            state.index = c
            tables, part = _build_chunk(min(chunk_patients, patients - c * chunk_patients), months, seed, rates, entries,
                                        encounters, chunk=state)
            parts.append(part)
            for name, df in tables.items():
                if name == "staff" and c > 0:  # the whole practice's staff: written with the first chunk
                    continue
                sink.add(name, df)
                counts[name] += len(df)
            del tables, df
        truth = _truth(parts, encounters)
        sink.add("truth", truth)
        counts["truth"] = len(truth)
    finally:
        sink.close()
    _write_params(out, params)
    return counts


class _Appender:
    """Appends a practice's chunks to its files: one ParquetWriter per table (the first chunk's schema; with several
    chunks a column empty in the first is text, so that a later chunk with values fits) or CSV without a second header."""

    def __init__(self, out: Path, fmt: str, several: bool):
        self.out, self.fmt, self.several = out, fmt, several
        self.writers: dict = {}
        self.started: set[str] = set()

    def add(self, name: str, df: pd.DataFrame) -> None:
        df = df.reset_index(drop=True)
        if self.fmt == "parquet" and name != "truth":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(_typed(name, df), preserve_index=False)
            if name not in self.writers:
                schema = table.schema
                if self.several:
                    schema = pa.schema([f.with_type(pa.large_string()) if pa.types.is_null(f.type) else f for f in schema],
                                       metadata=schema.metadata)
                # pandas' to_parquet is write_table(..., compression="snappy"): the same writer, the same bytes
                self.writers[name] = pq.ParquetWriter(self.out / f"{name}.parquet", schema, compression="snappy")
            elif not len(table):
                return
            writer = self.writers[name]
            writer.write_table(table if table.schema.equals(writer.schema) else table.cast(writer.schema))
        else:
            first = name not in self.started
            df.to_csv(self.out / f"{name}.csv", index=False, lineterminator="\n", mode="w" if first else "a", header=first)
            self.started.add(name)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def _write_params(out: Path, params: dict) -> None:
    (out / "synth.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build(n: int, months: str, seed: int, rates: dict, entries: tuple[int, int] = (2, 4),
          with_encounters: bool = True) -> dict[str, pd.DataFrame]:
    tables, parts = _build_chunk(n, months, seed, rates, entries, with_encounters)
    tables["truth"] = _truth([parts], with_encounters)
    return tables


def _check_entries(entries) -> tuple[int, int]:
    lo, hi = int(entries[0]), int(entries[1])
    if not 1 <= lo <= hi <= 20:
        raise InputError(f"entries per patient-month {lo}-{hi}: give FEWEST-MOST between 1 and 20")
    return lo, hi


def _staff(rng, n: int):
    """The practice's staff for ``n`` patients (drawn first from the seed's main stream): the table, the physicians'
    NPIs and the numbers of physicians, case managers and auxiliary staff of each kind."""
    n_doc, n_cm, n_aux = max(2, n // 150), max(2, n // 30), max(1, n // 250)
    doc_npi = _npi(rng.integers(10**8, 10**9 - 1, n_doc))
    cm_roles = _choice(rng, ["rn", "rn", "lpn", "ma"], n_cm)
    staff = pd.DataFrame({
        "staff_id": [f"D{i+1:03d}" for i in range(n_doc)] + [f"S{i+1:04d}" for i in range(n_cm)]
        + [f"{r}{i+1:03d}" for r in ("PH", "SW", "FD") for i in range(n_aux)],
        "role": ["physician"] * n_doc + list(cm_roles) + ["pharmacist"] * n_aux + ["social_worker"] * n_aux + ["non_clinical"] * n_aux,
        "supervising_npi": list(doc_npi) + list(_choice(rng, doc_npi, n_cm)) + list(doc_npi[np.arange(3 * n_aux) % n_doc]),
    })
    staff = pd.concat([staff, pd.DataFrame({"staff_id": ["U001"], "role": ["rn"], "supervising_npi": [""]})], ignore_index=True)  # SUP-01
    # names and the practitioners' own NPIs (data contract v3's optional staff columns), from the index: no random draw,
    # so every other table stays as the seed made it
    k = np.arange(len(staff))
    names = np.char.add(np.char.add(STAFF_FIRST[k % len(STAFF_FIRST)], " "), STAFF_LAST[(7 * k + 3) % len(STAFF_LAST)])
    doctor = (staff["role"] == "physician").to_numpy()
    staff["name"] = np.where(doctor, np.char.add("Dr. ", names), names)
    staff["npi"] = np.where(doctor, staff["supervising_npi"].to_numpy(dtype=str), "")
    return staff, doc_npi, n_doc, n_cm, n_aux


class _Chunk:
    """Where a chunk of a practice written in chunks sits: its index, the ids already used before it (patients, claims,
    time entries), the whole practice's staff (and the size it was drawn for), and each staff member's minutes already
    scheduled per day, so that a staff member's entries in this chunk follow, never overlap, those of earlier chunks."""

    def __init__(self, total: int, months: str):
        self.index, self.patients, self.claims, self.entries = 0, 0, 0, 0
        self.total = total
        self.staff = None  # (staff, doc_npi, n_doc, n_cm, n_aux), drawn by the first chunk
        keys = _months(months)
        self.first_day = key_start([keys[0]])[0] - pd.Timedelta(days=31)  # CONS-05's entries: a day or two before a consent
        self.days = (key_end([keys[-1]])[0] - self.first_day).days + 2
        self.busy = None  # minutes already taken (entries and gaps) per staff member and day: staff x days, flat


def _build_chunk(n: int, months: str, seed: int, rates: dict, entries: tuple[int, int] = (2, 4),
                 with_encounters: bool = True, chunk: _Chunk | None = None):
    """The tables of ``n`` patients and their truth's parts (see ``_truth``): the whole practice, or one chunk of it.

    The first chunk draws from the seed's own streams (so a practice in one chunk is the practice made in one piece);
    chunk i > 0 from streams of its own, ``[seed, 101, i]`` and the like."""
    lo, hi = _check_entries(entries)
    ci = chunk.index if chunk is not None else 0
    if ci == 0:
        rng = np.random.default_rng(seed)
        rng3 = np.random.default_rng([seed, 3])  # the catalog-v3 shapes: their own stream, so the v2 shapes stay where they were
    else:
        rng, rng3 = np.random.default_rng([seed, 101, ci]), np.random.default_rng([seed, 101, ci, 3])
    rates = {p: float(rates.get(p, 0.0)) for p in PITFALLS}  # rates of an older synth.json: its pitfalls only
    keys = np.array(_months(months))
    nm = len(keys)
    first_start = key_start([keys[0]])[0]
    fee_table, _ = refdata.fee_schedule()

    # ---------------------------------------------------------------- staff (a practice in chunks: the whole practice's)
    if chunk is None:
        staff, doc_npi, n_doc, n_cm, n_aux = _staff(rng, n)
    else:
        if chunk.staff is None:
            chunk.staff = _staff(rng, chunk.total)
        staff, doc_npi, n_doc, n_cm, n_aux = chunk.staff
    p0 = chunk.patients if chunk is not None else 0  # patients (and care plans) before this chunk

    # ---------------------------------------------------------------- patients
    pid = np.char.add("P", np.char.zfill(np.arange(p0 + 1, p0 + n + 1).astype(str), 6))
    doc = rng.integers(0, n_doc, n)
    cm = rng.integers(0, n_cm, n)
    aux = np.char.zfill((rng.integers(0, n_aux, n) + 1).astype(str), 3)
    family = rng.choice(np.array(["staff", "complex", "prac"]), n, p=[0.9, 0.05, 0.05])
    ppit = _pick_pitfall(rng, n, PATIENT_PITFALLS, rates)
    if nm < 2:
        ppit[np.isin(ppit, ["CONS-03", "ELIG-03"])] = ""  # needs a month after the revocation, or after the death
    new = (rng.random(n) < 0.12) | (ppit == "CONS-05")  # enrolled in the first month
    consent = np.where(new, first_start + pd.to_timedelta(rng.integers(3, 10, n), "D"),
                       first_start - pd.to_timedelta(rng.integers(20, 600, n), "D"))
    consent = pd.DatetimeIndex(consent)
    consent = consent.where(ppit != "CP-06", first_start - pd.Timedelta(days=800))
    consent = pd.DatetimeIndex(consent).where(~((ppit == "CONS-05") & (consent.day < 5)), consent + pd.Timedelta(days=3))
    letters = np.array(list("ACDEFGHJKMNPQRTUVWXY"))
    mbi = np.char.add(np.char.add(rng.integers(1, 10, n).astype(str), _choice(rng, letters, n)),
                      np.char.add(rng.integers(0, 10, n).astype(str), np.char.add(_choice(rng, letters, n), rng.integers(10**6, 10**7, n).astype(str))))
    patients = pd.DataFrame({"patient_id": pid, "first_name": _choice(rng, FIRST, n), "last_name": _choice(rng, LAST, n),
                             "birth_date": _date(pd.Timestamp("1930-01-01") + pd.to_timedelta(rng.integers(0, 365 * 28, n), "D")),
                             "medicare_id": mbi})
    # deaths: ELIG-03's patients die in a month before the last and are billed after it; some patients without a pitfall
    # die in the period and nothing is billed or logged after their month of death (which is billed: no finding)
    v3u = rng3.random(n)
    died = (ppit == "ELIG-03") | ((ppit == "") & (v3u < 0.012))
    death_month = np.where(ppit == "ELIG-03", rng3.integers(0, max(nm - 1, 1), n), rng3.integers(0, nm, n))
    death_month = np.where(died, death_month, nm)
    death = key_start(keys[np.minimum(death_month, nm - 1)]) + pd.to_timedelta(rng3.integers(26, 28, n), "D")  # after the month's entries
    patients["death_date"] = np.where(died, _date(death), "")

    # ---------------------------------------------------------------- diagnoses
    cats = np.array(list(CHRONIC))
    ncat = np.where(ppit == "ELIG-01", 1, rng.integers(2, 5, n))
    rows = np.repeat(np.arange(n), 4)
    order = np.argsort(rng.random((n, len(cats))), axis=1)[:, :4].ravel()
    take = np.tile(np.arange(4), n) < np.repeat(ncat, 4)
    rows, catsel = rows[take], cats[order[take]]
    code = np.array([CHRONIC[c][0] for c in catsel], dtype=object)
    alt = np.array([CHRONIC[c][-1] for c in catsel], dtype=object)
    code = np.where(rng.random(len(code)) < 0.4, alt, code)
    dx = [pd.DataFrame({"patient_id": pid[rows], "icd10_code": code})]
    elig = np.flatnonzero(ppit == "ELIG-01")  # near-miss: a second code of the same category, plus acute codes
    first_cat = catsel[np.searchsorted(rows, elig)] if len(elig) else np.array([])
    dx.append(pd.DataFrame({"patient_id": pid[elig], "icd10_code": [CHRONIC[c][-1] if CHRONIC[c][-1] != CHRONIC[c][0] else "R53.83" for c in first_cat]}))
    ac = rng.random(n) < 0.5
    dx.append(pd.DataFrame({"patient_id": pid[ac | (ppit == "ELIG-01")], "icd10_code": _choice(rng, ACUTE, int((ac | (ppit == "ELIG-01")).sum()))}))
    inv = ppit == "ELIG-02"
    dx.append(pd.DataFrame({"patient_id": pid[inv], "icd10_code": _choice(rng, INVALID, int(inv.sum()))}))
    diagnoses = pd.concat(dx, ignore_index=True)
    onset = consent[pd.Index(pid).get_indexer(diagnoses["patient_id"])] - pd.to_timedelta(rng.integers(200, 4000, len(diagnoses)), "D")
    diagnoses["onset_date"] = _date(onset)
    diagnoses["resolved_date"] = ""
    diagnoses = diagnoses.sort_values(["patient_id", "icd10_code"], kind="mergesort").drop_duplicates(["patient_id", "icd10_code"])
    # the claims' own diagnosis codes (837P HI, without the dot): the patient's chronic codes; DX-01's claims list only the
    # first of them, with an acute code half of the time
    hx = np.full((n, 4), "", dtype=object)
    hx[rows, np.tile(np.arange(4), n)[take]] = np.char.replace(code.astype(str), ".", "")
    dx_claim = hx[:, 0].copy()
    for j in range(1, 4):
        dx_claim = np.where(hx[:, j] != "", dx_claim + ";" + hx[:, j], dx_claim)
    acute = np.char.replace(_choice(rng3, ACUTE, n).astype(str), ".", "")
    dx_one = np.where(rng3.random(n) < 0.5, hx[:, 0] + ";" + acute, hx[:, 0])

    # ---------------------------------------------------------------- shapes of real practices (clean unless a pitfall says so)
    u2 = rng.random(n)
    plain = ppit == ""
    # an older practice-level consent besides the practitioner's own (not where it would cover a pitfall away)
    extra_consent = (u2 < 0.25) & ~new & ~np.isin(ppit, ["CONS-01", "CONS-04", "CONS-05", "IV-01"])
    reenrol = (u2 >= 0.25) & (u2 < 0.28) & plain & ~new  # revoked long before the period, consented again
    switch = (u2 >= 0.28) & (u2 < 0.31) & plain & ~new & (family == "staff") & (nm >= 2)  # practitioner change
    switch_month = np.where(switch, rng.integers(1, max(nm, 2), n), nm)
    rhc = (u2 >= 0.31) & (u2 < 0.34) & plain & (family == "staff")  # a rural health clinic patient: G0511 up to its last day
    g0511_last = refdata.code_date("G0511", "last_billable_date")
    g0511_key = int(month_key(pd.Series([g0511_last])).iloc[0])

    # ---------------------------------------------------------------- consents, care plans, initiating visits
    yes = lambda mask: np.where(mask, "no", "yes")  # noqa: E731
    revoke_month = np.where(ppit == "CONS-03", rng.integers(0, max(nm - 1, 1), n), -1)
    other_doc = doc_npi[(doc + 1) % n_doc]
    consents = pd.DataFrame({
        "patient_id": pid, "consent_date": _date(consent), "method": _choice(rng, ["verbal", "written"], n),
        "practitioner_npi": np.where(ppit == "CONS-04", other_doc, np.where((rng.random(n) < 0.8) | switch, doc_npi[doc], "")),
        "informed_cost_sharing": yes(ppit == "CONS-02"), "informed_one_practitioner": "yes", "informed_right_to_stop": "yes",
        "informed_availability": np.where(ppit == "CONS-06", "", "yes"),
        "revoked_date": np.where(revoke_month >= 0, _date(key_start(keys[np.maximum(revoke_month, 0)]) + pd.Timedelta(days=14)), ""),
    })[ppit != "CONS-01"]
    review = first_start - pd.to_timedelta(rng.integers(5, 60, n), "D")  # fresh for a range of up to 10 months
    plans = pd.DataFrame({"patient_id": pid, "plan_id": np.char.add("CP-", np.char.zfill(np.arange(p0 + 1, p0 + n + 1).astype(str), 5)), "created_date": _date(consent),
                          "reviewed_date": np.where((consent < review) & (ppit != "CP-06"), _date(review), ""),
                          "electronic": np.where(ppit == "CP-04", "false", "true"),
                          "shared_with_patient_date": np.where(ppit == "CP-05", "", _date(consent + pd.to_timedelta(rng.integers(0, 3, n), "D")))})
    for el in CARE_PLAN_ELEMENTS:
        plans[el] = "true"
    plans.loc[ppit == "CP-02", "measurable_goals"] = "false"
    plans.loc[ppit == "CP-03", "community_resources"] = ""
    # signatures: the patient's physician signs the plan when it is made (electronically, sometimes by hand); DOC-01's
    # plans are unsigned or stamped, without an attestation; a few others are unsigned, stamped or signed only after
    # the period's claims, each cured by the author's attestation (no finding)
    sig_u, sig_v = rng3.random(n), rng3.random(n)
    attested = (ppit != "DOC-01") & (sig_u < 0.03)
    unsigned = ((ppit == "DOC-01") & (sig_v < 0.5)) | (attested & (sig_v < 1 / 3))
    stamped = ((ppit == "DOC-01") & (sig_v >= 0.5)) | (attested & (sig_v >= 1 / 3) & (sig_v < 2 / 3))
    signed_late = attested & (sig_v >= 2 / 3)
    late_date = key_end([keys[-1]])[0] + pd.to_timedelta(rng3.integers(3, 21, n), "D")
    plans["signed_by"] = np.where(unsigned, "", "D" + np.char.zfill((doc + 1).astype(str), 3))
    plans["signed_date"] = np.where(unsigned, "", np.where(signed_late, _date(late_date), plans["created_date"]))
    plans["signature_method"] = np.where(unsigned, "", np.where(stamped, "stamp", np.where(sig_u > 0.85, "handwritten", "electronic")))
    plans["attested_date"] = np.where(signed_late, _date(late_date),
                                      np.where(attested, _date(consent + pd.to_timedelta(rng3.integers(1, 31, n), "D")), ""))
    plans = plans[ppit != "CP-01"]
    iv_date = np.where(new & (ppit != "IV-01"), consent, consent - pd.to_timedelta(np.where(ppit == "IV-01", rng.integers(400, 500, n), rng.integers(10, 300, n)), "D"))
    encounters = pd.DataFrame({"patient_id": pid, "encounter_date": _date(iv_date), "cpt_code": _choice(rng, ["99214", "99215", "G0439"], n),
                               "practitioner_npi": doc_npi[doc]})
    ivd = pd.DatetimeIndex(iv_date)
    more = []
    x = np.flatnonzero(extra_consent)  # dated after the initiating visit, so CCM still began after it
    gap = np.maximum((consent[x] - ivd[x]).days.to_numpy(), 2)
    older = ivd[x] + pd.to_timedelta(rng.integers(0, gap - 1), "D")
    more.append(pd.DataFrame({"patient_id": pid[x], "consent_date": _date(older), "method": "written", "practitioner_npi": "",
                              "informed_cost_sharing": "yes", "informed_one_practitioner": "yes", "informed_right_to_stop": "yes",
                              "informed_availability": "yes", "revoked_date": ""}))
    x = np.flatnonzero(reenrol)
    more.append(pd.DataFrame({"patient_id": pid[x], "consent_date": _date(consent[x] - pd.to_timedelta(rng.integers(500, 800, len(x)), "D")),
                              "method": "verbal", "practitioner_npi": doc_npi[doc[x]], "informed_cost_sharing": "yes",
                              "informed_one_practitioner": "yes", "informed_right_to_stop": "yes", "informed_availability": "yes",
                              "revoked_date": _date(consent[x] - pd.to_timedelta(rng.integers(60, 200, len(x)), "D"))}))
    x = np.flatnonzero(switch)
    switch_date = key_start(keys[np.minimum(switch_month, nm - 1)]).to_numpy() - np.timedelta64(5, "D")
    more.append(pd.DataFrame({"patient_id": pid[x], "consent_date": _date(switch_date[x]), "method": "written",
                              "practitioner_npi": other_doc[x], "informed_cost_sharing": "yes", "informed_one_practitioner": "yes",
                              "informed_right_to_stop": "yes", "informed_availability": "yes", "revoked_date": ""}))
    consents = pd.concat([consents, *more], ignore_index=True).sort_values(["patient_id", "consent_date"], kind="mergesort")
    encounters = pd.concat([encounters, pd.DataFrame({"patient_id": pid[x], "encounter_date": _date(switch_date[x]), "cpt_code": "99214",
                                                      "practitioner_npi": other_doc[x]})], ignore_index=True)

    # ---------------------------------------------------------------- patient-months
    P = np.repeat(np.arange(n), nm)
    K = np.tile(keys, n)
    mi = np.tile(np.arange(nm), n)
    npm = len(P)
    mpit = _pick_pitfall(rng, npm, MONTH_PITFALLS, rates)
    mpit[(ppit[P] != "") | (family[P] != "staff") | extra_consent[P] | reenrol[P] | switch[P] | rhc[P] | died[P]] = ""
    mpit[(mpit == "BILL-07") & (K <= g0511_key)] = ""
    g0511_multi = int(month_key(pd.Series([refdata.code_date("G0511", "multi_service_from")])).iloc[0])
    mpit[(mpit == "TIME-10") & ((K > g0511_key) | (K < g0511_multi))] = ""  # G0511 for any care management: 2024 to its last day
    v3m = rng3.random(npm)
    b4_491 = (mpit == "BILL-04") & (v3m < 0.5)  # 99491 with 99490 (the other half: 99439 without its base)
    # BILL-03's conflicting service: home health supervision, APCM from 2025, the APCM behavioral-health add-ons from 2026
    # (alone, or beside the APCM code)
    y2025, y2026 = (K >= 2025 * 12), (K >= 2026 * 12)
    b3_kind = np.select([y2026 & (v3m < 0.25), y2026 & (v3m < 0.5), y2026 & (v3m < 0.75), y2025 & (v3m < 0.5)],
                        ["apcm", "apcm+bhi", "bhi", "apcm"], "home_health")
    b3_kind = np.where(mpit == "BILL-03", b3_kind, "")
    mpit[(mpit == "BILL-05") & new[P] & (mi == 0)] = ""  # would date the first claim before the initiating visit
    fam = family[P].copy()
    fam[mpit == "TIME-08"] = "complex"
    fam[mpit == "TIME-09"] = "prac"
    fam[b4_491] = "prac"  # the practitioner's own 30-57 minutes: 99491, and 99490 besides it
    u = rng.random(npm)
    billed = ~((fam == "staff") & (u < 0.08) & (mpit == "") & (ppit[P] == ""))
    gone = died[P] & (ppit[P] != "ELIG-03") & (mi > death_month[P])  # nothing billed or logged after the month of death
    billed &= ~gone
    staff_min = np.select([u < 0.55, u < 0.85], [rng.integers(20, 40, npm), rng.integers(40, 60, npm)], rng.integers(60, 76, npm))
    minutes = np.where(billed, staff_min, rng.integers(5, 20, npm))
    minutes = np.where(fam == "complex", rng.integers(60, 115, npm), minutes)
    minutes = np.where(fam == "prac", rng.integers(30, 58, npm), minutes)
    minutes = np.select([mpit == "TIME-06", mpit == "TIME-07", mpit == "TIME-08", mpit == "TIME-09", mpit == "REV-01"],
                        [rng.integers(12, 20, npm), rng.integers(40, 60, npm), rng.integers(45, 60, npm), rng.integers(18, 30, npm),
                         rng.integers(40, 60, npm)], minutes)
    mstart = key_start(K).to_numpy()
    day0 = np.where(new[P] & (mi == 0), pd.DatetimeIndex(consent[P]).day, 2)  # first possible activity day

    # ---------------------------------------------------------------- time entries
    k = rng.integers(lo, hi + 1, npm)
    k[gone | (mpit == "TIME-10")] = 0  # TIME-10: G0511 billed in a month with no CCM time on record at all
    E = np.repeat(np.arange(npm), k)
    w = rng.uniform(0.5, 1.5, len(E))
    wsum = np.bincount(E, weights=w, minlength=npm)
    dur = np.floor(minutes[E] * w / wsum[E]).astype(int)
    last = np.r_[E[1:] != E[:-1], True] if len(E) else np.zeros(0, bool)
    dur[last] += (minutes - np.bincount(E, weights=dur, minlength=npm).astype(int))[E[last]]
    day = day0[E] + np.floor(rng.random(len(E)) * (27 - day0[E])).astype(int)
    who = np.where(fam[E] == "prac", "D" + np.char.zfill((doc[P[E]] + 1).astype(str), 3),
                   np.where(rng.random(len(E)) < 0.12, np.char.add(_choice(rng, ["PH", "SW"], len(E)), aux[P[E]]), "S" + np.char.zfill((cm[P[E]] + 1).astype(str), 4)))
    first_e = np.r_[True, E[1:] != E[:-1]] if len(E) else np.zeros(0, bool)  # (a month logged by aux staff alone has one too)
    who = np.where((mpit[E] == "SUP-01") & ((np.char.find(who.astype(str), "S") == 0) | first_e), "U001", who)
    names = list(ACTIVITIES)
    ai = rng.integers(0, len(names), len(E))
    act = np.array(names)[ai]
    flat = np.array([d for a in names for d in ACTIVITIES[a]], dtype=object)
    offset = np.cumsum([0] + [len(ACTIVITIES[a]) for a in names])[:-1]
    desc = flat[offset[ai] + rng.integers(0, 6, len(E)) % np.array([len(ACTIVITIES[a]) for a in names])[ai]]
    te = pd.DataFrame({"pm": E, "staff_id": who, "activity_date": mstart[E] + pd.to_timedelta(day - 1, "D").to_numpy(),
                       "minutes": dur, "activity": act, "description": desc, "face_to_face": "false", "counted_toward": "", "extra": ""})

    # extra entries for the documentation pitfalls (qualifying minutes are unchanged)
    extras = []
    for rule, kw in (("TIME-01", {"description": ""}), ("TIME-02", {"staff_id": None}), ("TIME-04", {"face_to_face": "true"}),
                     ("TIME-05", {"counted_toward": "99457"})):
        idx = np.flatnonzero(mpit == rule)
        if len(idx):
            base = te.drop_duplicates("pm").set_index("pm").loc[idx].reset_index()
            base = base.assign(minutes=rng.integers(5, 16, len(idx)), extra=rule, **kw)
            if rule == "TIME-02":
                base["staff_id"] = np.char.add("FD", aux[P[idx]])
            extras.append(base)
    c5 = np.flatnonzero((ppit[P] == "CONS-05") & (mi == 0))
    if len(c5):
        b = te.drop_duplicates("pm").set_index("pm").loc[c5].reset_index()
        cd = pd.DatetimeIndex(consent[P[c5]])
        extras.append(b.assign(activity_date=(cd - pd.to_timedelta(rng.integers(1, 3, len(c5)), "D")).to_numpy(), minutes=10, extra="CONS-05"))
    te = pd.concat([te, *extras], ignore_index=True)
    te = te.sort_values(["activity_date", "pm", "staff_id"], kind="mergesort").reset_index(drop=True)
    # schedule: back-to-back with 5-minute gaps per staff member and day, from 08:00
    g = te.groupby(["staff_id", "activity_date"], sort=False)["minutes"]
    start = 480 + (g.cumsum() - te["minutes"]) + 5 * g.cumcount()
    if chunk is not None:  # after what earlier chunks scheduled for the same staff member and day
        start = start + _busy(chunk, staff, te)
    te["start"] = start.to_numpy()
    t3 = np.flatnonzero(mpit == "TIME-03")
    if len(t3):  # a second entry inside the longest entry of the month, same staff member
        host = te[te["pm"].isin(t3) & (te["extra"] == "")].sort_values(["pm", "minutes"], ascending=[True, False], kind="mergesort").drop_duplicates("pm")
        add = host.assign(start=host["start"] + 2, minutes=np.minimum(5, host["minutes"] - 3), extra="TIME-03", description="Follow-up call to pharmacy")
        add = add[add["minutes"] >= 1]
        te = pd.concat([te, add], ignore_index=True)
    te = te.sort_values(["activity_date", "pm", "start"], kind="mergesort").reset_index(drop=True)
    e0 = chunk.entries if chunk is not None else 0
    timed = (rng.random(len(te)) < 0.7) | (te["extra"] == "TIME-03").to_numpy() | te["pm"].isin(t3).to_numpy()
    timed &= (te["start"] + te["minutes"]).to_numpy() < 1440  # an overfull day is logged in minutes only
    fmt_t = lambda m: pd.Series(np.char.add(np.char.add(np.char.zfill((m // 60).astype(int).astype(str), 2), ":"),  # noqa: E731
                                            np.char.zfill((m % 60).astype(int).astype(str), 2)))
    time_entries = pd.DataFrame({
        "entry_id": np.char.add("T", np.char.zfill(np.arange(e0 + 1, e0 + len(te) + 1).astype(str), 7)),
        "patient_id": pid[P[te["pm"]]], "staff_id": te["staff_id"], "activity_date": _date(te["activity_date"]),
        "minutes": te["minutes"], "start_time": np.where(timed, fmt_t(te["start"].to_numpy()), ""),
        "end_time": np.where(timed, fmt_t((te["start"] + te["minutes"]).to_numpy()), ""), "activity": te["activity"],
        "description": te["description"], "face_to_face": te["face_to_face"], "counted_toward": te["counted_toward"],
        # each entry signed by its author; DOC-02: the month's first entry (a counted one) is not
        "signed_by": te["staff_id"].where(~(te["pm"].isin(np.flatnonzero(mpit == "DOC-02")) & ~te["pm"].duplicated()), "")})

    # ---------------------------------------------------------------- claims
    month_end = key_end(K).to_numpy()
    first_entry = te.groupby("pm")["activity_date"].min().reindex(np.arange(npm)).to_numpy()
    svc = np.where(mpit == "BILL-05", first_entry - np.timedelta64(1, "D"), month_end)
    npi = np.where(mi >= switch_month[P], other_doc[P], doc_npi[doc[P]])
    g0511 = (rhc[P] & (K <= g0511_key)) | np.isin(mpit, ["BILL-07", "TIME-10"])  # RHC months bill G0511 instead of 99490 (+99439)
    lines = []

    def add(mask, code, units=1, date=None, who=None):
        idx = np.flatnonzero(mask & billed)
        if len(idx):
            lines.append(pd.DataFrame({"pm": idx, "cpt_code": code, "units": np.broadcast_to(units, npm)[idx] if np.ndim(units) else units,
                                       "service_date": (svc if date is None else date)[idx], "billing_npi": (npi if who is None else who)[idx]}))

    m = minutes
    staff_fam = (fam == "staff") & ~g0511
    add(g0511, "G0511")
    add(staff_fam & (mpit != "BILL-04"), "99490")
    addon = np.where(mpit == "REV-01", 0, np.clip((m - 20) // 20, 0, 2))
    addon = np.where(mpit == "TIME-07", 2, addon)
    add(staff_fam & (addon > 0), "99439", addon)
    add(staff_fam & (mpit == "BILL-04"), "99439", np.maximum(addon, 1))
    add(fam == "complex", "99487")
    add((fam == "complex") & ((m - 60) // 30 > 0) & (mpit != "TIME-08"), "99489", np.maximum((m - 60) // 30, 1))
    add(fam == "prac", "99491")
    add(b4_491, "99490")  # on the 99491's claim, after it: the 99490 line falls
    add(mpit == "BILL-02", "99490", 1, month_end)
    add(mpit == "BILL-01", "99490", 1, month_end, other_doc[P])
    add(mpit == "BILL-06", "G0506", 1, month_end)
    add(b3_kind == "home_health", "G0181", 1, month_end)
    apcm = _choice(rng3, APCM, npm)
    for c in APCM:
        add(np.isin(b3_kind, ["apcm", "apcm+bhi"]) & (apcm == c), c, 1, month_end)
    bhi = _choice(rng3, APCM_BHI, npm)
    for c in APCM_BHI:
        add(np.isin(b3_kind, ["apcm+bhi", "bhi"]) & (bhi == c), c, 1, month_end)
    # APCM billed by another practitioner in a CCM month is allowed (no finding)
    apcm_other = (v3m > 0.99) & (mpit == "") & (ppit[P] == "") & (fam == "staff") & (K >= 2025 * 12) & ~(
        extra_consent | reenrol | switch | rhc | died)[P]
    add(apcm_other, "G0556", 1, month_end, other_doc[P])
    g0506 = new[P] & (mi == 0) & (ppit[P] == "")
    add(g0506, "G0506", 1, pd.DatetimeIndex(consent[P]).to_numpy())
    cl = pd.concat(lines, ignore_index=True)
    # E/M visit claims for the initiating visits inside the months
    ivm = pd.DatetimeIndex(iv_date)
    ivk = month_key(pd.Series(ivm)).to_numpy(dtype="int64")
    inm = np.isin(ivk, keys)
    vis = pd.DataFrame({"pm": np.flatnonzero(inm) * nm + np.searchsorted(keys, ivk[inm]), "cpt_code": encounters["cpt_code"].to_numpy()[:n][inm],
                        "units": 1, "service_date": ivm[inm], "billing_npi": doc_npi[doc][inm]})
    cl = pd.concat([cl, vis], ignore_index=True)
    cl["separate"] = cl["cpt_code"].isin(["G0181", *APCM, *APCM_BHI]) | (cl.duplicated(["pm", "cpt_code"]) & cl["cpt_code"].isin(["99490"]))
    cl = cl.sort_values(["service_date", "pm", "separate", "billing_npi"], kind="mergesort").reset_index(drop=True)
    claim_key = cl["pm"].astype(str) + "|" + cl["service_date"].astype(str) + "|" + cl["billing_npi"] + "|" + cl["separate"].astype(str) + cl.groupby(["pm", "cpt_code"]).cumcount().astype(str).where(cl["separate"], "")
    cid = pd.factorize(claim_key)[0]
    ccm_line = cl["cpt_code"].isin(["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"]).to_numpy()
    pos = np.where(ccm_line & (rng.random(len(cl)) < 0.06), "22", "11")  # some CCM billed from a hospital outpatient setting
    fee = refdata.fee_for(cl["cpt_code"], cl["service_date"], fee_table, facility=pos == "22")["amount"]
    fee = fee.fillna(cl["cpt_code"].map({"G0506": 63.00, "G0511": 72.90, "G0181": 110.00, "99214": 131.00, "99215": 183.00,
                                         "G0439": 133.00})).fillna(90.0)
    # the allowed amount, and Medicare's payment: 80 % of it less the sequestration in force on the service date (the
    # patient owes the rest); BILL-08's lines were denied: nothing allowed, nothing paid
    allowed = (fee * cl["units"]).round(2)
    paid = (allowed * refdata.MEDICARE_SHARE * (1 - refdata.sequestration_rate(cl["service_date"]))).round(2)
    cpm = cl["pm"].to_numpy()
    denied = ccm_line & (mpit[cpm] == "BILL-08")
    c0 = chunk.claims if chunk is not None else 0
    claims = pd.DataFrame({"claim_id": np.char.add("C", np.char.zfill((c0 + cid + 1).astype(str), 7)), "line": cl.groupby(cid).cumcount() + 1,
                           "patient_id": pid[P[cpm]], "billing_npi": cl["billing_npi"], "service_date": _date(cl["service_date"]),
                           "cpt_code": cl["cpt_code"], "units": cl["units"], "paid_amount": paid.where(~denied, 0.0),
                           "allowed_amount": allowed.where(~denied, 0.0), "place_of_service": pos,
                           "diagnosis_codes": np.where(mpit[cpm] == "DX-01", dx_one[P[cpm]], dx_claim[P[cpm]])})
    claims = claims.sort_values(["claim_id", "line"], kind="mergesort")

    # ---------------------------------------------------------------- truth
    # every (patient, month, rule) the checker must report: the injected pitfall and the findings that follow from it
    tr = []
    ccm = cl["cpt_code"].isin(["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"])
    billed_pm = np.zeros(npm, bool)
    billed_pm[cl.loc[ccm, "pm"].to_numpy()] = True
    timed_pm = np.zeros(npm, bool)
    timed_pm[cl.loc[ccm & (cl["cpt_code"] != "G0506"), "pm"].to_numpy()] = True
    has = {c: np.zeros(npm, bool) for c in ("99490", "99439")}
    for c in has:
        has[c][cl.loc[cl["cpt_code"] == c, "pm"].to_numpy()] = True
    pat = ppit[P]
    ok = (pat != "") & billed_pm & ~np.isin(pat, ["CONS-03", "CONS-05", "ELIG-03"])
    tr.append((np.flatnonzero(ok), pat[ok]))
    e3 = (pat == "ELIG-03") & billed_pm & (mi > death_month[P])  # the month of death itself is billable
    tr.append((np.flatnonzero(e3), pat[e3]))
    # the claims list the chart's chronic codes: one category in the chart, one on the claim
    dx1 = (pat == "ELIG-01") & timed_pm
    tr.append((np.flatnonzero(dx1), np.full(int(dx1.sum()), "DX-01")))
    c3 = (pat == "CONS-03") & (mi > revoke_month[P]) & billed_pm
    tr.append((np.flatnonzero(c3), pat[c3]))
    # without a consent, or after the revocation month, no time counts (CONS-05 on each entry): every billed time code
    # falls short
    no_time = c3 | ((pat == "CONS-01") & billed_pm)
    tr.append((np.flatnonzero(no_time), np.full(int(no_time.sum()), "CONS-05")))
    for mask, rule in ((no_time & has["99490"], "TIME-06"), (no_time & has["99439"], "TIME-07"), (no_time & (fam == "complex"), "TIME-08"),
                       (no_time & (fam == "prac"), "TIME-09")):
        tr.append((np.flatnonzero(mask), np.full(int(mask.sum()), rule)))
    # BILL-04's extra 99439 line: units beyond what the minutes support
    extra439 = np.where(addon > 0, addon, 0) + np.maximum(addon, 1)
    b4 = (mpit == "BILL-04") & ~b4_491 & billed_pm & (extra439 > np.clip((minutes - 20) // 20, 0, 2))
    tr.append((np.flatnonzero(b4), np.full(int(b4.sum()), "TIME-07")))
    c5m = (pat == "CONS-05") & (mi == 0)
    tr.append((np.flatnonzero(c5m), pat[c5m]))
    mm = (mpit != "") & (billed_pm | np.isin(mpit, ["TIME-01", "TIME-02", "TIME-03", "TIME-04", "TIME-05", "SUP-01"]))
    tr.append((np.flatnonzero(mm), mpit[mm]))
    # BILL-01: the second practitioner has no consent of their own (unless the consent is practice-level) and no visit
    b1 = (mpit == "BILL-01") & billed_pm
    named = pd.Index(pid[P]).isin(consents.loc[consents["practitioner_npi"] != "", "patient_id"].to_numpy())  # hashed: np.isin on strings is quadratic
    tr.append((np.flatnonzero(b1 & named), np.full(int((b1 & named).sum()), "CONS-04")))
    # ---- the initiating visit (catalog v3), its two shapes and its truth. The visit history starts late: the
    # encounters table begins 800 days before the period (older rows were not exported), after some patients' one-year
    # windows begin. Some initiating visits are only on the claims table (an E/M line, no encounters row). Without an
    # encounters table (on request) there is no visit evidence at all: no rows and no visit claims, so IV-01 applies to
    # every billed month (G0506 then has no visit to ride on: BILL-06).
    rng_iv = np.random.default_rng([seed, 24] if ci == 0 else [seed, 101, ci, 24])  # its own stream: the other shapes of a seed stay where they were
    visit_codes = list(refdata.initiating_visit_codes())
    history_from = first_start - pd.Timedelta(days=800)
    kept = (ivd >= history_from) & with_encounters  # the patient's initiating visit is in the data
    on_claims = kept & (rng_iv.random(n) < 0.08)  # ... only as a claim line
    visit_claims = 0  # claims of initiating visits found only on the claims table (after the CCM claims' ids)
    if with_encounters:
        drop = np.r_[~kept | on_claims, np.zeros(len(encounters) - n, bool)]  # the first n rows are the initiating visits
        x = np.flatnonzero(on_claims & ~inm)  # visits inside the months are on the claims table already
        if len(x):
            code = encounters["cpt_code"].to_numpy()[x]
            when = pd.Series(ivd[x])
            allowed_v = refdata.fee_for(pd.Series(code), when, fee_table)["amount"].fillna(
                pd.Series(code).map({"99214": 131.00, "99215": 183.00, "G0439": 133.00})).fillna(90.0).round(2)
            dx_x = diagnoses[diagnoses["patient_id"].isin(pid[x])]  # their patients' alone: the join is a Python call per patient
            dx_list = dx_x.assign(c=dx_x["icd10_code"].str.replace(".", "", regex=False)).groupby("patient_id")["c"].agg(";".join)
            first_id = int(claims["claim_id"].str[1:].astype(int).max()) + 1 if len(claims) else 1
            add_v = pd.DataFrame({"claim_id": np.char.add("C", np.char.zfill(np.arange(first_id, first_id + len(x)).astype(str), 7)),
                                  "line": 1, "patient_id": pid[x], "billing_npi": doc_npi[doc[x]], "service_date": _date(when),
                                  "cpt_code": code, "units": 1, "allowed_amount": allowed_v.to_numpy(),
                                  "paid_amount": (allowed_v * refdata.MEDICARE_SHARE * (1 - refdata.sequestration_rate(when))).round(2).to_numpy(),
                                  "place_of_service": "11", "diagnosis_codes": pd.Series(pid[x]).map(dx_list).fillna("").to_numpy()})
            claims = pd.concat([claims, add_v.reindex(columns=claims.columns, fill_value="")], ignore_index=True)
            visit_claims = len(x)
        encounters = encounters[~drop]
    else:
        encounters = encounters.iloc[0:0]
        claims = claims[~claims["cpt_code"].isin(visit_codes)]
        claims = claims.assign(line=claims.groupby("claim_id").cumcount() + 1)  # a claims export of CCM lines only
        g6 = g0506 & billed
        tr.append((np.flatnonzero(g6), np.full(int(g6.sum()), "BILL-06")))
    # where the visit history begins: the earliest encounters row or qualifying visit claim (none: no start)
    hist = pd.concat([pd.to_datetime(encounters["encounter_date"]),
                      pd.to_datetime(claims.loc[claims["cpt_code"].isin(visit_codes), "service_date"])])
    start = hist.min() if len(hist) else pd.NaT

    def window(comm):  # the first day of the one-year window: the same calendar date a year earlier
        return (pd.Series(comm, dtype="datetime64[ns]") - pd.DateOffset(years=1)).to_numpy()

    # commencement of the month's (first) billing practitioner: the first consent covering it (the older practice-level
    # one where there is one), or its first claim when no consent covers it (CONS-01, CONS-04) or after a revocation's
    # month ended (CONS-03: the claim of the month after, the first of the new span)
    timed_cl = cl[ccm & (cl["cpt_code"] != "G0506")]
    first_claim = timed_cl.groupby(P[timed_cl["pm"].to_numpy()])["service_date"].min().reindex(np.arange(n)).to_numpy()
    comm_first = consent.to_numpy().copy()
    comm_first[np.flatnonzero(extra_consent)] = older.to_numpy()
    comm_first = np.where(np.isin(ppit, ["CONS-01", "CONS-04"]), first_claim, comm_first)[P]
    after = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    rv = np.flatnonzero(ppit == "CONS-03")
    if len(rv) and nm > 1:
        after[rv] = month_end.reshape(n, nm)[rv, np.minimum(revoke_month[rv] + 1, nm - 1)]
    comm_p = np.where(c3, after[P], comm_first)
    v = ivd.to_numpy()[P]
    found = kept[P] & (v >= window(comm_p)) & (v <= comm_p)
    found |= switch[P] & (mi >= switch_month[P]) & with_encounters  # the new practitioner's visit on the day of its consent
    # IV-01 where the visit history reaches back to the window's first day; where the whole practice's history begins
    # is known only once every chunk is made (``_truth``): keep each candidate month with the later of the windows it
    # needs covered (NaT, the smallest int64, where none is known: covered only when there is no history at all)
    cand = billed_pm & ~found
    # BILL-01's second practitioner has no visit; its CCM began with the practice-level consent, or with its first claim
    first_b1 = pd.Series(np.where(b1, month_end, np.datetime64("NaT"))).groupby(P).min().to_numpy()[P]
    comm_other = np.where(named, first_b1, consent[P].to_numpy())
    nat = np.datetime64("NaT", "ns").astype("int64")
    need = np.maximum(np.where(cand, window(comm_p).astype("datetime64[ns]").astype("int64"), nat),
                      np.where(b1, window(comm_other).astype("datetime64[ns]").astype("int64"), nat))
    iv_idx = np.flatnonzero(cand | b1)
    tr = [(i, np.asarray(r)) for i, r in tr]
    tr = [(i[r != "IV-01"], r[r != "IV-01"]) for i, r in tr]  # IV-01's truth is this block's alone
    # a month whose initiating visit is not in the data (not assessed) shows no missed revenue either
    tr = [(i[keep], r[keep]) for i, r in tr for keep in [~((r == "REV-01") & ~found[i])]]
    idx = np.concatenate([t[0] for t in tr])
    others = pd.DataFrame({"patient_id": pid[P[idx]], "service_month": key_to_label(K[idx]) if len(idx) else [],
                           "rule_id": np.concatenate([t[1] for t in tr]).astype(str)})
    iv = pd.DataFrame({"patient_id": pid[P[iv_idx]], "service_month": key_to_label(K[iv_idx]) if len(iv_idx) else [],
                       "need": need[iv_idx]})

    if chunk is not None:  # the ids the next chunk starts after
        chunk.patients += n
        chunk.entries += len(time_entries)
        chunk.claims = c0 + (int(cid.max()) + 1 if len(cid) else 0) + visit_claims
    tables = {"patients": patients, "diagnoses": diagnoses, "consents": consents, "care_plans": plans, "staff": staff,
              "time_entries": time_entries, "claims": claims,
              "encounters": encounters.sort_values(["patient_id", "encounter_date"], kind="mergesort")}
    return tables, (others, iv, start)


def _truth(parts, with_encounters: bool) -> pd.DataFrame:
    """truth.csv from each chunk's parts: its findings, and its IV-01 candidates with the window each needs covered,
    judged against where the whole practice's visit history begins (the earliest of the chunks' beginnings)."""
    starts = [s for _, _, s in parts if not pd.isna(s)]
    start = min(starts) if starts else pd.NaT
    frames = []
    for others, iv, _ in parts:
        covered = np.ones(len(iv), bool) if pd.isna(start) else iv["need"].to_numpy() >= pd.Timestamp(start).as_unit("ns").value
        frames += [others, iv.loc[covered, ["patient_id", "service_month"]].assign(rule_id="IV-01")]
    truth = pd.concat(frames, ignore_index=True)
    truth = truth.sort_values(["patient_id", "service_month", "rule_id"], kind="mergesort").drop_duplicates()
    if not with_encounters:  # IV-01 is an error in every billed month, and an error leaves no missed revenue to report
        truth = truth[truth["rule_id"] != "REV-01"].reset_index(drop=True)
    return truth


def _busy(chunk: _Chunk, staff: pd.DataFrame, te: pd.DataFrame) -> np.ndarray:
    """Minutes each entry's staff member has taken on its day in earlier chunks (entries and their 5-minute gaps); then
    adds this chunk's."""
    sidx = pd.Index(staff["staff_id"]).get_indexer(te["staff_id"])
    day = ((te["activity_date"].to_numpy().astype("datetime64[D]") - np.datetime64(chunk.first_day.date(), "D"))
           .astype("int64"))
    if (sidx < 0).any() or (day < 0).any() or (day >= chunk.days).any():  # the generator's own invariant
        raise RuntimeError("synth: a time entry's staff member or day falls outside the practice's schedule")
    if chunk.busy is None:
        chunk.busy = np.zeros(len(staff) * chunk.days, np.int32)
    slot = sidx.astype("int64") * chunk.days + day
    before = chunk.busy[slot]
    np.add.at(chunk.busy, slot, te["minutes"].to_numpy().astype(np.int32) + 5)
    return before


def write(tables: dict[str, pd.DataFrame], out: Path, fmt: str, params: dict, progress: bool = False) -> None:
    _check_synth_out(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in tables:  # an earlier synth run in the other format would leave two files per table
        other = out / f"{name}.{'csv' if fmt == 'parquet' else 'parquet'}"
        if other.is_file():
            other.unlink()
    items = list(tables.items())
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="writing tables", unit="table", leave=False, disable=paths.progress_off())
    for name, df in items:
        df = df.reset_index(drop=True)
        if fmt == "parquet" and name != "truth":
            _typed(name, df).to_parquet(out / f"{name}.parquet", index=False)
        else:
            df.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    _write_params(out, params)


def _check_synth_out(out: Path) -> None:
    """A synthetic practice goes into a new or empty folder, or over an earlier synthetic practice (its synth.json)."""
    from ccmlib.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; choose a new folder name")
    if out.is_dir() and any(out.iterdir()) and not (out / "synth.json").is_file():
        raise InputError(f"--out {out}: this folder is not empty and holds no synthetic practice (no synth.json); "
                         f"ccm-audit synth writes only into a new or empty folder, or over an earlier synthetic practice")


def _typed(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Parquet with real types, as a database export would have them (dates, numbers, booleans)."""
    from ccmlib.intake.schema import TABLES
    from ccmlib.intake.validate import parse_column

    out = {}
    for c in df.columns:
        col = TABLES[name].col(c) if c in TABLES[name].columns else None
        if col is not None and col.kind in ("date", "number", "int", "bool"):
            out[c] = parse_column(df[c].astype(str), col)[0]
        else:
            out[c] = df[c].astype(str).replace({"": None})
    return pd.DataFrame(out)
