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
log is applied in every shard (its adds by the shard that holds their patient-month) and checked once, at the merge:
each shard returns what it holds of the findings, claim lines and patient-months the log names
(:func:`~ccmlib.engine.decisions.log_refs`), so that a decision naming nothing of the audit stops the check with the
message one check gives (after the shards, not before them; a log that cannot be read is refused before reading).
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
from ccmlib.engine import decisions as review
from ccmlib.engine import indicators, profiles
from ccmlib.engine.facts import period_of, visit_history_start
from ccmlib.engine.periods import Period, key_to_label, parse_period
from ccmlib.engine.rules import load_all
from ccmlib.engine.pipeline import (AuditResult, Whole, _pricing_summary, _sort_order, _declared_visits_from, audit,
                                    data_dates, headline_summary, months_between, normalized_npis, overrides_record,
                                    select_rules, staff_counts)
from ccmlib.engine.sqlfacts import staff_rows_of
from ccmlib.intake.fastops import arrow_text, lookup
from ccmlib.intake.load import Practice, finish_quality, load_tables, sort_quality, unknown_patient_rows
from ccmlib.intake.schema import TABLES
from ccmlib.intake.validate import DQ_COLUMNS, empty_quality
from ccmlib.reference import data as refdata
from ccmlib.reference.codes import INITIATING_VISITS

#: notes a shard's audit writes that are about the whole practice, not its patients: the rules that could not run
#: (table "") and the fee schedule's notes; written once, from the first shard
WHOLE_PRACTICE_NOTES = ("", "fee_schedule")

OVERLAP_CLUSTERS_SQL = """
WITH e AS (
  SELECT patient_id, staff_id, activity_date AS d, start_time AS s, end_time AS f, file_row_number AS r,
         max(end_time) OVER w AS m
  FROM read_parquet(?, file_row_number = true)
  WHERE staff_id IS NOT NULL AND start_time IS NOT NULL AND end_time IS NOT NULL AND activity_date IS NOT NULL
  WINDOW w AS (PARTITION BY staff_id, activity_date ORDER BY start_time, end_time, file_row_number
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
k AS (SELECT DISTINCT staff_id, d FROM e WHERE m > s),
c AS (
  SELECT patient_id, staff_id, d,
         sum(CASE WHEN m IS NULL OR m <= s THEN 1 ELSE 0 END) OVER (PARTITION BY staff_id, d ORDER BY s, f, r
                                                                  ROWS UNBOUNDED PRECEDING) AS run
  FROM e SEMI JOIN k USING (staff_id, d)),
g AS (SELECT DISTINCT staff_id, d, run, patient_id FROM c WHERE patient_id IS NOT NULL)
SELECT first(patient_id) OVER (PARTITION BY staff_id, d, run) AS a, patient_id AS b
FROM g QUALIFY count(*) OVER (PARTITION BY staff_id, d, run) > 1
"""
# a staff member's entries of a day, by start: an entry starting before the latest end so far (m) belongs to the run
# of entries before it; an entry that starts a run overlaps none of them. Runs are numbered only on the staff-days (k)
# where some entry overlaps another: on every other day each entry is a run of its own and joins nobody (most days; the
# query took 6.6 s on the 1M practice's 8M entries numbering them all, 2.5 s so). The engine's overlap of an entry
# (sqlfacts.OVERLAP_SQL) reads only entries that intersect it, all in its run: patients who share a run share a shard

SHARED_CLAIMS_SQL = """
WITH g AS (SELECT DISTINCT claim_id, patient_id FROM read_parquet(?) WHERE claim_id IS NOT NULL AND patient_id IS NOT NULL)
SELECT first(patient_id) OVER (PARTITION BY claim_id) AS a, patient_id AS b FROM g QUALIFY count(*) OVER (PARTITION BY claim_id) > 1
"""


def audit_sharded(data: str | Path, shards: int, work: str | Path, period: str | Period | None = None, start=None, end=None,
                  rules=None, fees=None, conditions=None, overrides=None, progress: bool = False, qp_npis=(), profile=None,
                  encounters_from=None, processes: bool = True, jobs: int = 1) -> AuditResult:
    """:func:`~ccmlib.engine.pipeline.audit` of the practice folder ``data`` in ``shards`` shards of its patients, one
    after another, with ``work`` (an empty folder this call may fill and empties again) holding the typed tables
    between the steps. The result equals the unsharded audit's (its facts are not kept: the summary's details that
    read them are in :attr:`AuditResult.facts_details`). ``processes``: the reading and each shard in a process of its
    own, so that the memory one step used is the system's again before the next (False: all in this process);
    ``jobs`` shards are checked at once (each in its own process: about ``jobs`` times a shard's memory)."""
    if shards < 1:
        raise InputError(f"--shards {shards}: give a number of shards of 1 or more")
    if jobs < 1 or (jobs > 1 and not processes):
        raise InputError(f"--shard-jobs {jobs}: give 1 or more (several only with each shard in its own process)")
    if overrides is not None:
        review.load(overrides)  # a decision log that cannot be read: before reading the practice
    started = datetime.now(timezone.utc)
    folder, work = Path(data), Path(work)
    per = period if isinstance(period, Period) else parse_period(period, start, end)
    profiles.rules_run(profiles.load_profile(profile), select_rules(rules))  # a wrong profile or rule id: before reading
    step = _in_process if processes else _here
    options = dict(rules=rules, fees=fees, conditions=conditions, qp_npis=qp_npis, profile=profile, encounters_from=encounters_from,
                   overrides=overrides)
    try:
        whole, names, inputs, ingest, quality, weights = step(_load_whole, folder, work / "whole", progress, encounters_from)
        per = per or period_of(_month_keys(whole.data_months))
        step(_plan_and_partition, work, names, shards, weights, progress)
        del weights
        bar = _bar(progress, shards, "checking shards", "shard")
        tasks = [(_audit_shard, work, i, folder, names, inputs, ingest, per, whole, options) for i in range(shards)]
        for _ in (_in_processes(tasks, jobs) if processes else (t[0](*t[1:]) for t in tasks)):
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        return _merge([work / f"shard_{i}" / PART for i in range(shards)], quality, started, fees, qp_npis, overrides, per)
    finally:
        for p in [work / "whole", *work.glob("shard_*")]:
            shutil.rmtree(p, ignore_errors=True)


#: what the fork server imports once, before it forks the steps' processes (each would otherwise import pandas, Arrow,
#: DuckDB and the engine again: about a second per process)
PRELOAD = ["ccmlib.engine.shards"]


def _context():
    """The processes of the steps: forked from a fork server (a fresh process started for this purpose, never this
    one, so a step shares no memory with the caller) that has imported the engine once; spawned where there is no
    fork server (Windows). The fork server lives as long as the process that started it (a notebook's kernel keeps
    it, about 100 MB, until restarted)."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _in_processes(tasks: list[tuple], jobs: int):
    """Each task (function, *arguments) in a new process of its own, ``jobs`` at a time; yields as each ends (the first
    exception raised here, the tasks not begun dropped)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(jobs, mp_context=_context(), max_tasks_per_child=1) as pool:
        pending = {pool.submit(*t): t for t in tasks}
        try:
            while pending:
                # as each ends (FIRST_EXCEPTION would wait for all of them when none fails: the bar would stand still)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    task = pending.pop(f)
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        what, remedy = STEPS.get(task[0].__name__, (task[0].__name__, "on a machine with more memory"))
                        raise InputError(f"the process {what} ended without a result (stopped by the system, most likely for "
                                         f"want of memory): check {remedy}") from None
        finally:
            for f in pending:
                f.cancel()


#: what each step's process does, for the message when the system stops one
STEPS = {"_load_whole": ("reading and validating the tables", "a practice with fewer time entries (each table is read "
                          "and validated whole, shards or not: export only the audited months' time entries), or on a "
                          "machine with more memory"),
         "_plan_and_partition": ("cutting the tables into shards", "on a machine with more memory"),
         "_audit_shard": ("checking a shard", "in more shards (--shards), fewer at once (--shard-jobs), or on a machine "
                          "with more memory")}
PART = "part.pickle"
#: memory DuckDB may hold while it finds the patients that overlapping entries and shared claims join
PLAN_MEMORY = "768MB"
#: rows of the typed tables written at a time
ROWS_PER_GROUP = 500_000
#: rows of a typed table cut into shards at a time (each shard's part of them one row group of its file)
PARTITION_ROWS = 1_000_000


def _bar(progress: bool, total: int, desc: str, unit: str):
    """A progress bar of one step (None without progress)."""
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "row", disable=paths.progress_off())


def _here(fn, *args):
    return fn(*args)


def _in_process(fn, *args):
    """``fn(*args)`` in a new Python process (forked from the fork server, so that it shares no memory with this one),
    its result (or its exception) returned here; the memory it used is the system's again when it ends."""
    return list(_in_processes([(fn, *args)], 1))[0]


def _month_keys(months: dict | None) -> list[int]:
    return [] if months is None else [parse_period(months["from"]).first, parse_period(months["to"]).first]


def _load_whole(folder: Path, out: Path, progress: bool, encounters_from):
    """Step 1: every table read and validated whole, one at a time, written typed to ``out``; returns what the shards
    take from the whole practice (:class:`Whole`), the tables' names, the input records, ingest's record and rows, the
    practice's data-quality rows (sorted, as :func:`load_practice` gives them) and the rows per patient id."""
    out.mkdir(parents=True)
    quality, inputs, names = [], [], []
    patients = id_set = None
    unknown = []
    ends, visits = [], {"encounters": pd.DataFrame({"encounter_date": pd.Series([], dtype="datetime64[ns]")}),
                        "claims": pd.DataFrame({"cpt_code": pd.Series([], dtype=object), "service_date": pd.Series([], dtype="datetime64[ns]")})}
    per_table = []  # each table's rows per patient (_rows_per_patient), added up at the end
    for name, accepted, dq, record in load_tables(folder, progress, threads=1):  # one table at a time: the least memory
        names.append(name)
        quality.append(dq)
        inputs.append(record)
        if name == "patients":
            patients = accepted["patient_id"].dropna().drop_duplicates()
            id_set = arrow_text(patients)  # hashed by each lookup (Arrow keeps no hash table between calls)
        if "patient_id" in accepted.columns:
            counts, other, flagged = _rows_per_patient(name, accepted, patients, id_set, record["file"])
            per_table.append((counts, other))
            if flagged is not None:
                unknown.append(flagged)
        ends.append(data_dates(name, accepted))
        if name == "encounters":
            visits["encounters"] = accepted[["encounter_date"]]
        elif name == "claims":
            visits["claims"] = accepted.loc[accepted["cpt_code"].isin(list(INITIATING_VISITS)), ["cpt_code", "service_date"]]
        _write_typed(accepted, out / f"{name}.parquet")
        del accepted
        pa.default_memory_pool().release_unused()  # the table's memory back to the system before the next is read
    tables = dict.fromkeys(names)
    ingest, dq = finish_quality(folder, tables, quality + unknown)
    declared, _ = _declared_visits_from(encounters_from, Practice(folder, {}, empty_quality()))
    whole = Whole(visit_history=visit_history_start(visits["encounters"], visits["claims"], declared),
                  data_months=months_between(ends))
    return whole, names, inputs, ingest, dq, _sum_rows(per_table, patients)


def _rows_per_patient(name: str, df: pd.DataFrame, patients: pd.Series | None, id_set,
                      label: str) -> tuple[np.ndarray | None, pd.Series | None, pd.DataFrame | None]:
    """The rows of table ``name`` (read from ``label``) per patient id: an array of counts per patient of ``patients``,
    the counts of the other ids (those the patients table lacks; a missing id under a missing key), and the
    data-quality rows of its rows whose id the patients table lacks (as loading flags them; None when there are none).
    One lookup of each row's id in the patients' ``id_set`` gives all three; before the patients table, every id is
    counted as another."""
    ids = df["patient_id"]
    if patients is None:
        return None, ids.value_counts(dropna=False), None
    at = lookup(ids, id_set)  # int32, null where absent: no row-sized copies of int64 while the table is held
    other = flagged = None
    if at.null_count:
        found = pc.is_valid(at).to_numpy(zero_copy_only=False)
        other = ids[~found].value_counts(dropna=False)
        if name != "patients" and TABLES[name].patient_ref:
            flagged = unknown_patient_rows(name, df, ~found, label)
    counts = np.zeros(len(patients), dtype=np.int64)
    for chunk in (at.chunks if isinstance(at, pa.ChunkedArray) else [at]):
        counts += np.bincount(chunk.drop_null().to_numpy(zero_copy_only=False), minlength=len(patients))
    return counts, other, flagged


def _sum_rows(counts: list[tuple], patients: pd.Series | None) -> pd.Series:
    """The rows per patient id of every table (the counts and other ids of :func:`_rows_per_patient`, added up): the
    patients' in one array (a sum of arrays, not a group-by of millions of text labels: 2.7 s at 1M patient-months),
    the few others added to it."""
    known = [c for c, _ in counts if c is not None]
    other = [o for _, o in counts if o is not None and len(o)]
    out = pd.Series(np.sum(known, axis=0) if known else np.zeros(0 if patients is None else len(patients), dtype=np.int64),
                    index=pd.Index([] if patients is None else patients.to_numpy(dtype=object), dtype=object))
    if other:
        o = pd.concat(other).groupby(level=0, dropna=False).sum()
        mine = o.index.isin(out.index)
        out.loc[o.index[mine]] += o[mine].to_numpy()
        out = pd.concat([out, o[~mine]])
    return out


def _write_typed(df: pd.DataFrame, path: Path) -> None:
    """A typed table to Parquet, as it reads back (pandas' types in the file's metadata), converted to Arrow a row
    group at a time (a large table is not held twice)."""
    schema, writer = None, None
    try:
        for at in range(0, max(len(df), 1), ROWS_PER_GROUP):
            t = pa.Table.from_pandas(df.iloc[at:at + ROWS_PER_GROUP], preserve_index=False, schema=schema)
            if writer is None:
                schema = t.schema
                writer = pq.ParquetWriter(path, schema, write_statistics=False)  # no step reads a column's min and max
            writer.write_table(t)
            del t
    finally:
        if writer is not None:
            writer.close()


def _plan(tables: Path, names: list[str], shards: int, weights: pd.Series, bar=None) -> pd.Series:
    """Step 2: the shard of each patient id (a Series indexed by the id; a missing id in shard 0): patients joined by
    overlapping entries or a shared claim in one component, the components in the text order of their first patient,
    cut into ``shards`` runs of about equal rows."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = pd.Index(weights.index[weights.index.notna()], dtype=object)
    ids = ids[pc.sort_indices(pa.array(ids.to_numpy(), type=pa.large_string())).to_numpy()] if len(ids) else ids  # UTF-8 byte order
    pairs = []
    con = _plan_connection(tables)
    try:
        for name, sql in (("time_entries", OVERLAP_CLUSTERS_SQL), ("claims", SHARED_CLAIMS_SQL)):
            if name in names:
                pairs.append(con.execute(sql, [str(tables / f"{name}.parquet")]).fetchdf())
            if bar is not None:
                bar.update()
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


def _plan_connection(tables: Path):
    """The plan's database: two threads, :data:`PLAN_MEMORY` (beyond it DuckDB spills to ``tables``/spill), and no
    progress bar of DuckDB's own (a connection's default: it would draw on the check's output on a large practice)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{PLAN_MEMORY}'")
    con.execute("SET temp_directory = '" + str(tables / "spill").replace("'", "''") + "'")
    return con


def _plan_and_partition(work: Path, names: list[str], shards: int, weights: pd.Series, progress: bool = False) -> None:
    """Steps 2 and 3's input: the plan (:func:`_plan`), and each table of ``work``/whole cut into the shards' tables
    (``work``/shard_I/TABLE.parquet), each shard's rows in the file's order; a table without patients (the staff
    directory) goes whole to every shard, rows without a patient id to the first."""
    bar = _bar(progress, 2, "finding patients to keep together", "query")
    plan = _plan(work / "whole", names, shards, weights, bar)
    if bar is not None:
        bar.close()
    bar = _bar(progress, sum(pq.ParquetFile(work / "whole" / f"{n}.parquet").metadata.num_rows for n in names),
               "cutting into shards", "row")
    ids = pa.array(plan.index.to_numpy(dtype=object), type=pa.large_string())
    shard_of = pa.array(plan.to_numpy(dtype=np.int64))
    for i in range(shards):
        (work / f"shard_{i}").mkdir()
    threads = min(2, paths.usable_cores())
    for name in names:
        src = work / "whole" / f"{name}.parquet"
        f = pq.ParquetFile(src)
        writers = [pq.ParquetWriter(work / f"shard_{i}" / f"{name}.parquet", f.schema_arrow, write_statistics=False)
                   for i in range(shards)]
        try:
            for batch in f.iter_batches(batch_size=PARTITION_ROWS):  # a batch at a time: the table is never held whole
                if bar is not None:
                    bar.update(batch.num_rows)
                if "patient_id" not in batch.schema.names:
                    for w in writers:
                        w.write_batch(batch)
                    continue
                # each row's id looked up among the plan's (one hash table per batch, in Arrow); no id: the first shard
                at = pc.index_in(batch.column("patient_id").cast(pa.large_string()), value_set=ids)
                s = np.asarray(pc.fill_null(pc.take(shard_of, at), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
                order = np.argsort(s, kind="stable")
                bounds = np.searchsorted(s[order], np.arange(shards + 1))
                batch = batch.take(pa.array(order))  # the rows by shard, each shard's in the file's order
                pieces = [(w, batch.slice(bounds[i], bounds[i + 1] - bounds[i]))
                          for i, w in enumerate(writers) if bounds[i + 1] > bounds[i]]
                for _ in paths.map_ordered(lambda p: p[0].write_batch(p[1]), pieces, threads):  # two files written at once
                    pass
        finally:
            for w in writers:
                w.close()
        del f
        src.unlink()
    if bar is not None:
        bar.close()


def _audit_shard(work: Path, shard: int, folder: Path, names: list[str], inputs, ingest, per: Period, whole: Whole,
                 options: dict) -> None:
    """Step 3: the audit of one shard's tables, what the merge takes of it written to ``work``/shard_I/part.pickle."""
    import pickle

    here = work / f"shard_{shard}"
    tables = {}
    for name in names:
        tables[name] = pq.read_table(here / f"{name}.parquet").to_pandas()
        (here / f"{name}.parquet").unlink()
    res = audit(Practice(folder, tables, empty_quality(), inputs, *ingest), per, keep_facts=False, whole=whole, **options)
    del tables
    part = _shard_part(res, first=shard == 0)
    del res
    with open(here / PART, "wb") as fh:
        pickle.dump(part, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _shard_part(res: AuditResult, first: bool) -> dict:
    """What the merge takes of a shard's result: its four tables (its notes about the whole practice only from the
    first shard), its rules' finding counts, and the counts behind the summary's details that read the facts."""
    facts = res.facts
    dq = res.data_quality
    if not first:
        dq = dq[~dq["table"].isin(WHOLE_PRACTICE_NOTES)]
    return {"findings": res.findings, "claim_lines": res.claim_lines, "patient_months": res.patient_months,
            "notes": dq, "run": res.run, "decisions": res.decisions, "log_refs": res.log_refs,
            "staff": staff_counts(facts, res.patient_months),
            "enrolments": indicators.enrolment_counts(facts.consents, facts.period.last),
            "no_prior_visit": indicators.no_prior_visit(facts, res.claim_lines)}


def _merge(paths_: list[Path], quality: pd.DataFrame, started, fees, qp_npis, overrides=None, per: Period | None = None) -> AuditResult:
    """Step 4: one result from the shards' parts (in shard order), as the unsharded audit gives it; with a decision
    log, the log checked first (as one audit checks it, on what the shards found of the things it names)."""
    import pickle

    parts = []
    for p in paths_:  # written by _audit_shard in this run's own work folder
        with open(p, "rb") as fh:
            parts.append(pickle.load(fh))
    log = None
    if overrides is not None:
        log = review.in_period(review.load(overrides), set(key_to_label(np.array(sorted(per.keys)))))
        if len(log):
            refs = review.refs_together([p["log_refs"] for p in parts])
            review.check_log(log, overrides, refs["finding_keys"], refs["lines"], refs["months"], load_all())

    def together(name: str, na_position: str) -> pd.DataFrame:
        df = pd.concat([p.pop(name) for p in parts], ignore_index=True)
        # each shard's table is in the engine's order and holds whole patients: ordering the rows by patient id
        # (stable) orders them as one audit does (shards cut in the patients' order are often in order already)
        order = _sort_order([df["patient_id"]], na_position=na_position)
        return df if (order == np.arange(len(df))).all() else df.take(order).reset_index(drop=True)

    findings, lines, pms = together("findings", "first"), together("claim_lines", "last"), together("patient_months", "last")
    dq = sort_quality(pd.concat([quality] + [p["notes"] for p in parts], ignore_index=True)[DQ_COLUMNS])
    counts = [p["enrolments"] for p in parts if p["enrolments"] is not None]
    run = copy.deepcopy(parts[0]["run"])
    last = parse_period(run["period"]["to"]).first
    res = AuditResult(findings=findings, claim_lines=lines, patient_months=pms, data_quality=dq, run=run, facts=None)
    res.decisions = parts[0]["decisions"]
    if log is not None:
        res.review_trail = review.trail(findings, log)
        run["overrides"] = overrides_record(overrides, res.review_trail)
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
