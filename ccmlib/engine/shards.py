"""A practice checked in shards of its patients (``ccm-audit check --shards N``): the same outputs as one check, in
about a shard's share of the memory.

Every rule reads one patient's rows, with two exceptions: a staff member's overlapping entries (TIME-03) may belong to
different patients, and one claim may carry lines of different patients. So:

1. each table is read and validated whole, as one check reads it (the same data-quality rows, row numbers and
   rejected duplicates), and written typed to a work folder, one table at a time;
2. the patients are put in shards: patients whose entries overlap (the same staff member and day, times that
   intersect) or who share a claim id go to one shard together (connected components), the shards balanced by rows
   in the patients' text order;
3. each shard is audited on its patients' rows (the staff table whole), with what only the whole practice knows
   (the period, the visit history's start, the months with data) given to it (:class:`~ccmlib.engine.pipeline.Whole`);
4. the shards' tables are put together in the engine's order, the run record and the summary's details that read
   the facts are summed from the shards' counts, and the whole-practice notes are written once.

The unsharded check is the oracle (tests/test_shards.py compares the run folders byte for byte). An auditor decision
log is not yet applied in shards (its checks need every finding of the practice at once): such a run is refused.
"""
from __future__ import annotations

import copy
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ccmlib import paths
from ccmlib.errors import InputError
from ccmlib.engine import indicators, profiles
from ccmlib.engine.facts import period_of, visit_history_start
from ccmlib.engine.periods import Period, parse_period
from ccmlib.engine.pipeline import (AuditResult, Whole, _pricing_summary, _sort_order, _declared_visits_from, audit,
                                    data_dates, headline_summary, months_between, normalized_npis, select_rules,
                                    staff_counts)
from ccmlib.engine.sqlfacts import staff_rows_of
from ccmlib.intake.load import Practice, _unknown_patients, finish_quality, load_tables, sort_quality
from ccmlib.intake.validate import DQ_COLUMNS, empty_quality
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import INITIATING_VISITS

#: notes a shard's audit writes that are about the whole practice, not its patients: the rules that could not run
#: (table "") and the fee schedule's notes; written once, from the first shard
WHOLE_PRACTICE_NOTES = ("", "fee_schedule")

OVERLAP_CLUSTERS_SQL = """
WITH e AS (
  SELECT patient_id, staff_id, activity_date AS d, start_time AS s, end_time AS f,
         max(end_time) OVER (PARTITION BY staff_id, activity_date ORDER BY start_time, end_time
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS m
  FROM read_parquet(?)
  WHERE staff_id IS NOT NULL AND start_time IS NOT NULL AND end_time IS NOT NULL AND activity_date IS NOT NULL),
c AS (
  SELECT patient_id, staff_id, d,
         sum(CASE WHEN m IS NULL OR m <= s THEN 1 ELSE 0 END) OVER (PARTITION BY staff_id, d ORDER BY s, f
                                                                  ROWS UNBOUNDED PRECEDING) AS run
  FROM e),
g AS (SELECT DISTINCT staff_id, d, run, patient_id FROM c WHERE patient_id IS NOT NULL)
SELECT first(patient_id) OVER (PARTITION BY staff_id, d, run) AS a, patient_id AS b
FROM g QUALIFY count(*) OVER (PARTITION BY staff_id, d, run) > 1
"""
# a staff member's entries of a day, by start: an entry starting before the latest end so far (m) belongs to the run
# of entries before it; an entry that starts a run overlaps none of them. The engine's overlap of an entry
# (sqlfacts.OVERLAP_SQL) reads only entries that intersect it, all in its run: patients who share a run share a shard

SHARED_CLAIMS_SQL = """
WITH g AS (SELECT DISTINCT claim_id, patient_id FROM read_parquet(?) WHERE claim_id IS NOT NULL AND patient_id IS NOT NULL)
SELECT first(patient_id) OVER (PARTITION BY claim_id) AS a, patient_id AS b FROM g QUALIFY count(*) OVER (PARTITION BY claim_id) > 1
"""


def audit_sharded(data: str | Path, shards: int, work: str | Path, period: str | Period | None = None, start=None, end=None,
                  rules=None, fees=None, conditions=None, overrides=None, progress: bool = False, qp_npis=(), profile=None,
                  encounters_from=None) -> AuditResult:
    """:func:`~ccmlib.engine.pipeline.audit` of the practice folder ``data`` in ``shards`` shards of its patients, one
    after another, with ``work`` (an empty folder this call may fill and empties again) holding the typed tables
    between the steps. The result equals the unsharded audit's (its facts are not kept: the summary's details that
    read them are in :attr:`AuditResult.facts_details`)."""
    if shards < 1:
        raise InputError(f"--shards {shards}: give a number of shards of 1 or more")
    if overrides is not None:
        raise InputError(f"{overrides}: an auditor decision log is not applied in a check in shards (its checks need every "
                         f"finding of the practice at once); check without --shards to apply it")
    started = datetime.now(timezone.utc)
    folder, work = Path(data), Path(work)
    per = period if isinstance(period, Period) else parse_period(period, start, end)
    profiles.rules_run(profiles.load_profile(profile), select_rules(rules))  # a wrong profile or rule id: before reading
    try:
        whole, names, inputs, ingest, quality, weights = _load_whole(folder, work / "whole", progress, encounters_from)
        per = per or period_of(_month_keys(whole.data_months))
        plan = _plan(work / "whole", names, shards, weights)
        parts = []
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=shards, desc="checking shards", unit="shard", disable=paths.progress_off())
        for i in range(shards):
            tables = _shard_tables(work / "whole", names, plan, i)
            practice = Practice(folder, tables, empty_quality(), inputs, *ingest)
            res = audit(practice, per, rules=rules, fees=fees, conditions=conditions, qp_npis=qp_npis, profile=profile,
                        encounters_from=encounters_from, keep_facts=False, whole=whole)
            parts.append(_shard_part(res, first=i == 0))
            del practice, tables, res
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
    finally:
        shutil.rmtree(work / "whole", ignore_errors=True)
    return _merge(parts, quality, started, fees, qp_npis)


def _month_keys(months: dict | None) -> list[int]:
    return [] if months is None else [parse_period(months["from"]).first, parse_period(months["to"]).first]


def _load_whole(folder: Path, out: Path, progress: bool, encounters_from):
    """Step 1: every table read and validated whole, one at a time, written typed to ``out``; returns what the shards
    take from the whole practice (:class:`Whole`), the tables' names, the input records, ingest's record and rows, the
    practice's data-quality rows (sorted, as :func:`load_practice` gives them) and the rows per patient id."""
    out.mkdir(parents=True)
    quality, inputs, labels, names = [], [], {}, []
    patients = None
    unknown = []
    ends, visits = [], {"encounters": pd.DataFrame({"encounter_date": pd.Series([], dtype="datetime64[ns]")}),
                        "claims": pd.DataFrame({"cpt_code": pd.Series([], dtype=object), "service_date": pd.Series([], dtype="datetime64[ns]")})}
    weights = []
    for name, accepted, dq, record in load_tables(folder, progress, threads=1):  # one table at a time: the least memory
        names.append(name)
        labels[name] = record["file"]
        quality.append(dq)
        inputs.append(record)
        if name == "patients":
            patients = accepted[["patient_id"]]
        elif patients is not None:
            unknown.extend(_unknown_patients({"patients": patients, name: accepted}, labels))
        ends.append(data_dates(name, accepted))
        if name == "encounters":
            visits["encounters"] = accepted[["encounter_date"]]
        elif name == "claims":
            visits["claims"] = accepted.loc[accepted["cpt_code"].isin(list(INITIATING_VISITS)), ["cpt_code", "service_date"]]
        if "patient_id" in accepted.columns:
            weights.append(accepted["patient_id"].value_counts(dropna=False))
        pq.write_table(pa.Table.from_pandas(accepted, preserve_index=False), out / f"{name}.parquet")
        del accepted
    tables = dict.fromkeys(names)
    ingest, dq = finish_quality(folder, tables, quality + unknown)
    declared, _ = _declared_visits_from(encounters_from, Practice(folder, {}, empty_quality()))
    whole = Whole(visit_history=visit_history_start(visits["encounters"], visits["claims"], declared),
                  data_months=months_between(ends))
    per_patient = pd.concat(weights).groupby(level=0, dropna=False).sum() if weights else pd.Series([], dtype="int64")
    return whole, names, inputs, ingest, dq, per_patient


def _plan(tables: Path, names: list[str], shards: int, weights: pd.Series) -> pd.Series:
    """Step 2: the shard of each patient id (a Series indexed by the id; a missing id in shard 0): patients joined by
    overlapping entries or a shared claim in one component, the components in the text order of their first patient,
    cut into ``shards`` runs of about equal rows."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    import duckdb

    ids = pd.Index([i for i in weights.index if not pd.isna(i)], dtype=object)
    ids = ids[np.argsort(np.array([s.encode("utf-8") for s in ids], dtype=object), kind="stable")] if len(ids) else ids
    pairs = []
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 2")
        if "time_entries" in names:
            pairs.append(con.execute(OVERLAP_CLUSTERS_SQL, [str(tables / "time_entries.parquet")]).fetchdf())
        if "claims" in names:
            pairs.append(con.execute(SHARED_CLAIMS_SQL, [str(tables / "claims.parquet")]).fetchdf())
    finally:
        con.close()
    edges = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame({"a": [], "b": []})
    a, b = ids.get_indexer(edges["a"].astype(object)), ids.get_indexer(edges["b"].astype(object))
    n = len(ids)
    if not n:
        return pd.Series(np.zeros(0, dtype=np.int64), index=ids)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    # each component's position: its first patient in text order; the components cut by their rows' running total
    first = np.full(comp.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    w = weights.reindex(ids).to_numpy(dtype="float64")
    comp_w = np.bincount(comp, weights=w, minlength=len(first))
    order = np.argsort(first, kind="stable")
    before = np.cumsum(comp_w[order]) - comp_w[order]  # rows of the components before each, in order
    total = max(float(comp_w.sum()), 1.0)
    comp_shard = np.empty(len(first), dtype=np.int64)
    comp_shard[order] = np.minimum((before * shards / total).astype(np.int64), shards - 1)
    return pd.Series(comp_shard[comp], index=ids)


def _shard_tables(tables: Path, names: list[str], plan: pd.Series, shard: int) -> dict[str, pd.DataFrame]:
    """Step 3's input: every table's rows of the shard's patients, in the file's order, typed as loaded (a table
    without patients, the staff directory, whole); rows without a patient id go to the first shard."""
    keys = pa.array(plan.index.to_numpy(dtype=object), type=pa.large_string())
    in_shard = plan.to_numpy() == shard
    out = {}
    for name in names:
        t = pq.read_table(tables / f"{name}.parquet")
        if "patient_id" in t.column_names:
            at = pc.index_in(t.column("patient_id").cast(pa.large_string()), value_set=keys).to_numpy(zero_copy_only=False)
            missing = pd.isna(at)
            at = np.where(missing, 0, at).astype(np.int64)
            keep = np.where(missing, shard == 0, in_shard[at] if len(in_shard) else False)
            t = t.filter(pa.array(keep))
        out[name] = t.to_pandas()
        del t
    return out


def _shard_part(res: AuditResult, first: bool) -> dict:
    """What the merge takes of a shard's result: its four tables (its notes about the whole practice only from the
    first shard), its rules' finding counts, and the counts behind the summary's details that read the facts."""
    facts = res.facts
    dq = res.data_quality
    if not first:
        dq = dq[~dq["table"].isin(WHOLE_PRACTICE_NOTES)]
    return {"findings": res.findings, "claim_lines": res.claim_lines, "patient_months": res.patient_months,
            "notes": dq, "run": res.run, "decisions": res.decisions,
            "staff": staff_counts(facts, res.patient_months) if facts is not None else [],
            "enrolments": indicators.enrolment_counts(facts.consents, facts.period.last),
            "no_prior_visit": indicators.no_prior_visit(facts, res.claim_lines)}


def _merge(parts: list[dict], quality: pd.DataFrame, started, fees, qp_npis) -> AuditResult:
    """Step 4: one result from the shards' (in shard order), as the unsharded audit gives it."""
    def together(name: str, na_position: str) -> pd.DataFrame:
        df = pd.concat([p[name] for p in parts], ignore_index=True)
        # each shard's table is in the engine's order and holds whole patients: ordering the rows by patient id
        # (stable) orders them as one audit does
        return df.take(_sort_order([df["patient_id"]], na_position=na_position)).reset_index(drop=True)

    findings, lines, pms = together("findings", "first"), together("claim_lines", "last"), together("patient_months", "last")
    dq = sort_quality(pd.concat([quality] + [p["notes"] for p in parts], ignore_index=True)[DQ_COLUMNS])
    counts = [p["enrolments"] for p in parts if p["enrolments"] is not None]
    run = copy.deepcopy(parts[0]["run"])
    last = parse_period(run["period"]["to"]).first
    res = AuditResult(findings=findings, claim_lines=lines, patient_months=pms, data_quality=dq, run=run, facts=None)
    res.decisions = parts[0]["decisions"]
    res.facts_details = {"by_staff": staff_rows_of([p["staff"] for p in parts]),
                         "enrolments": indicators.enrolments_of(np.sum(counts, axis=0), last) if counts else [],
                         "no_prior_visit": indicators.no_prior_visit_of([p["no_prior_visit"] for p in parts])}
    for i, st in enumerate(run["rules"]):
        if "raw_findings" in st:
            st["raw_findings"] = sum(int(p["run"]["rules"][i]["raw_findings"]) for p in parts)
    run["started"] = started.isoformat(timespec="seconds")
    iv01 = sum(int(p["run"]["summary"]["iv01_not_assessed_patient_months"]) for p in parts)
    run["summary"] = headline_summary(res)
    run["summary"]["iv01_not_assessed_patient_months"] = iv01
    fee_table, _ = refdata.fee_schedule(fees)
    run["fee_schedule"].update(_pricing_summary(lines, fee_table, normalized_npis(qp_npis)))
    run["fee_schedule"]["sequestration_rates"] = sorted({r for p in parts for r in p["run"]["fee_schedule"]["sequestration_rates"]})
    run["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return res
