"""The audit job: load -> facts -> rules -> money -> the tables of the data contract.

``audit()`` is the one public entry point; ``write_outputs()`` writes the run folder.
"""
from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ccmlib import paths
from ccmlib.engine import decisions as review
from ccmlib.engine import indicators
from ccmlib.engine import profiles
from ccmlib.paths import map_ordered, usable_cores
from ccmlib.reference import data as refdata
from ccmlib.errors import InputError
from ccmlib.engine.facts import PM, Facts, build_facts, practitioner_visit_status
from ccmlib.intake.fastops import sort_ranks
from ccmlib.intake.sources import sha256
from ccmlib.engine.outputs import RunFolder
from ccmlib.intake.load import Practice, load_practice, sort_quality
from ccmlib.engine.money import NOT_SUPPORTED, codes_label, expand_effects, settle_lines, unit_values
from ccmlib.engine.periods import Period, key_to_label, month_key, parse_period, quarter_label
from ccmlib.engine.sqlfacts import PARALLEL_QUERIES_FROM
from ccmlib.engine.rules import RULE_CATALOG_VERSION, load_all
from ccmlib.intake.validate import DQ_COLUMNS, empty_quality

FINDING_COLUMNS = ["patient_id", "service_month", "rule_id", "severity", "cert_category", "message", "claim_id", "line",
                   "cpt_code", "billing_npi", "entry_id", "amount", "review_decision", "reviewed_by", "reviewed_at", "review_reason",
                   "found_by"]
CLAIM_LINE_COLUMNS = ["claim_id", "line", "patient_id", "service_month", "billing_npi", "service_date", "cpt_code",
                      "units_billed", "units_supported", "paid_amount", "overpayment", "cost_sharing", "allowed_unsupported",
                      "determination", "place_of_service", "price_source", "price_basis", "fee_setting", "conversion_factor", "rule_ids"]
PM_COLUMNS = ["patient_id", "service_month", "qualifying_minutes", "practitioner_minutes", "documented_minutes",
              "chronic_conditions", "codes_billed", "codes_supported", "overpayment", "cost_sharing", "missed_amount",
              "date_20min", "date_40min", "date_60min", "errors", "warnings"]
PACKAGES = ["ccm-audit", "pandas", "numpy", "pyarrow", "duckdb", "scipy", "simple-icd-10-cm", "openpyxl", "papermill"]


@dataclass
class Whole:
    """What the audit of one shard of a practice's patients takes from the whole practice: where the visit history
    begins (date, source) and the first and last month with data (:func:`data_months`)."""
    visit_history: tuple
    data_months: dict | None


@dataclass
class AuditResult:
    findings: pd.DataFrame
    claim_lines: pd.DataFrame
    patient_months: pd.DataFrame
    data_quality: pd.DataFrame
    run: dict
    facts: Facts | None = field(default=None, repr=False)
    review_trail: pd.DataFrame | None = None  # applied auditor decisions (overrides_applied.csv)
    sample: pd.DataFrame | None = None  # sampled units (with spares) when the run was sampled
    frame: pd.DataFrame | None = None  # the numbered sampling frame
    decisions: pd.DataFrame | None = field(default=None, repr=False)  # the auditor decisions in force on this period
    # a practice checked in shards (ccmlib.engine.shards): the summary's details that read the facts, found shard by
    # shard (by_staff, enrolments, no_prior_visit); the facts themselves are then not kept
    facts_details: dict | None = field(default=None, repr=False)
    # a shard's audit with a decision log: what it holds of the things the log names (decisions.log_refs), for the
    # log's check once every shard is done
    log_refs: dict | None = field(default=None, repr=False)

    def summary(self) -> dict:
        """run.json's summary with the breakdowns and risk indicators (see :func:`add_details`)."""
        return add_details(self)

    def entries(self) -> pd.DataFrame:
        """Every time entry of the period with its minutes counted and why any were excluded (a public view)."""
        from ccmlib.engine.views import entries
        return entries(self.facts)

    def patient_month(self, patient_id: str, month: str) -> dict[str, pd.DataFrame]:
        """Everything about one patient-month: conditions, consent, care plan, time log, claim lines, findings."""
        from ccmlib.engine.views import patient_month
        return patient_month(self, patient_id, month)


def attach_sample(result: AuditResult, size: int, seed=None, spares: int = 0, strata: str | None = None,
                  unit: str = "claim_lines") -> AuditResult:
    """Draw a RAT-STATS sample of the run's claim lines (or patient-months) and record it in ``run``."""
    from ccmlib.stats.frames import FRAME_ORDER, appraise_sample, assign_strata, build_frame, draw

    frame = build_frame(result.claim_lines, unit)
    sample, info = draw(frame, size, seed, spares, strata)
    log = result.decisions if result.decisions is not None else review.load(None)
    sample = review.unit_states(sample, unit, result.findings, log)
    result.frame = frame.assign(stratum=assign_strata(frame, strata).to_numpy())
    result.sample = sample
    result.run["seed"] = info["seed"]
    result.run["sample"] = {"unit": unit, "frame_order": FRAME_ORDER[unit], **info}
    result.run["appraisal"] = appraise_sample(sample, info)
    result.run["review"] = review_record(sample, unit)
    keep = {k: result.run["summary"][k] for k in ("iv01_not_assessed_patient_months",) if k in result.run["summary"]}
    result.run["summary"] = {**headline_summary(result), **keep}
    return result


def review_record(sample: pd.DataFrame, unit: str) -> dict:
    """How far the chart review of the sample has come: sampled units decided and open (spares not counted)."""
    s = sample[~sample["spare"]]
    decided = int((s["review_state"] == "decided").sum())
    return {"unit": unit, "sampled_units": int(len(s)), "decided": decided, "undecided": int(len(s)) - decided,
            "complete": decided == len(s)}


def package_versions() -> dict:
    """The versions run.json records (a copy: the installed packages do not change while a process runs, so they are
    looked up once)."""
    return dict(_package_versions())


@lru_cache(maxsize=1)
def _package_versions() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def select_rules(rules: str | list[str] | None) -> list[str]:
    catalog = load_all()
    if rules is None or rules == "" or rules == []:
        return sorted(catalog)
    ids = [r.strip().upper() for r in (rules.split(",") if isinstance(rules, str) else rules) if r.strip()]
    unknown = [r for r in ids if r not in catalog]
    if unknown:
        raise InputError(f"unknown rule ID(s): {', '.join(unknown)}; known: {', '.join(sorted(catalog))}")
    return sorted(set(ids))


#: time entries from which the first phase's rules run two at a time (threads: the rules only read the facts, and most
#: of their work is in numpy, Arrow and DuckDB, which let go of the interpreter); on a small practice threads only cost.
#: The size from which DuckDB runs the facts' queries in two threads too: one size makes a practice large
PARALLEL_RULES_FROM = PARALLEL_QUERIES_FROM


#: patient-months from which the run folder's tables are written while the summary's details are computed (threads)
PARALLEL_OUTPUTS_FROM = 50_000


def _output_threads(result: AuditResult) -> int:
    """How many threads write a run folder's tables and compute its summary's details: two for a large run."""
    return 2 if usable_cores() >= 2 and len(result.patient_months) >= PARALLEL_OUTPUTS_FROM else 1


def _rule_threads(facts: Facts) -> int:
    """How many threads the first phase's rules run in: two on a large practice when the process may use two cores."""
    return 2 if usable_cores() >= 2 and len(facts.store) >= PARALLEL_RULES_FROM else 1


def _run_rules(facts: Facts, ids: list[str], progress: bool) -> tuple[pd.DataFrame, list[dict]]:
    catalog = load_all()
    status, todo = [], []
    for rid in ids:
        r = catalog[rid]
        lacking = [t for t in r.needs if t in facts.missing]
        if lacking:
            status.append({"rule_id": rid, "status": "not_run", "reason": f"table(s) not provided: {', '.join(lacking)}"})
        elif r.phase == 1:  # (a second-phase rule is run by audit() once the first phase's money is settled)
            status.append({"rule_id": rid, "status": "ran"})
            todo.append((status[-1], r))

    def run(item):
        return item[1].func(facts)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), desc="checking rules", unit="rule", leave=False, disable=paths.progress_off())
    parts = []
    for (st, _), out in zip(todo, map_ordered(run, todo, _rule_threads(facts))):  # the catalog's order, in threads or not
        st["raw_findings"] = int(len(out))
        parts.append(out)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    if not parts:
        return pd.DataFrame(columns=["patient_id", "mkey", "scope", "rule_id", "severity"]), status
    return _with_rule_columns(pd.concat(parts, ignore_index=True), [r for _, r in todo], [len(p) for p in parts]), status


def _with_rule_columns(raw: pd.DataFrame, rules: list, sizes: list[int]) -> pd.DataFrame:
    """The rules' raw findings, concatenated in the catalog's order (``sizes`` rows of each of ``rules``), with the
    columns every finding carries from its rule: ``rule_id``, ``cert_category`` and the ``severity`` the finding did not
    set (set once on the whole table, not on each rule's frame: a frame's new column costs pandas as much on one row as
    on thousands). Text of pandas' default text dtype; ``severity`` as the rows left it (object), or text when there
    are none."""
    text = pd.Series(["x"]).dtype  # pandas' default text dtype
    ids = np.repeat(np.array([r.id for r in rules], dtype=object), sizes)
    if len(raw):
        given = raw["severity"].to_numpy(dtype=object)
        severity = pd.Series(np.where(pd.isna(given), np.repeat(np.array([r.severity for r in rules], dtype=object), sizes), given),
                             index=raw.index, dtype=object)  # (an array of text would become pandas' text dtype)
    else:
        severity = pd.array([], dtype=text)
    raw["severity"] = severity
    raw["rule_id"] = pd.array(ids, dtype=text)
    raw["cert_category"] = pd.array(np.repeat(np.array([r.cert_category for r in rules], dtype=object), sizes), dtype=text)
    return raw


def _second_phase(facts: Facts, ids, status, standing: pd.DataFrame, fee_table: pd.DataFrame, findings: pd.DataFrame,
                  pmo: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Rules that take the first phase's standing findings (REV-01); their ``amount`` is missed revenue, added to the
    patient-months' ``missed_amount``."""
    catalog = load_all()
    done = {s["rule_id"] for s in status}
    for rid in ids:
        r = catalog[rid]
        if r.phase != 2 or rid in done:
            continue
        out = r.func(facts, standing, fee_table)
        out = out.assign(rule_id=rid, severity=r.severity, cert_category=r.cert_category)
        if len(out):
            findings = pd.concat([findings, out], ignore_index=True)
            rows = _pm_rows(pmo, out)  # each finding's patient-month row; summed per row as a groupby on the keys sums
            per_pm = out["amount"][rows >= 0].groupby(rows[rows >= 0]).sum().reindex(np.arange(len(pmo)))
            pmo["missed_amount"] = per_pm.fillna(0.0).to_numpy() + pmo["missed_amount"].to_numpy()
        status.append({"rule_id": rid, "status": "ran", "raw_findings": int(len(out))})
    return findings, status


def audit(data: str | Path | Practice, period: str | Period | None = None, start: str | None = None, end: str | None = None,
          rules: str | list[str] | None = None, fees: str | Path | None = None, conditions: str | Path | None = None,
          overrides: str | Path | None = None, progress: bool = False, qp_npis=(), profile=None,
          encounters_from=None, keep_facts: bool = True, whole: "Whole | None" = None) -> AuditResult:
    """Check a practice folder (or a loaded :class:`Practice`) against the CCM rule catalog.

    ``overrides`` names an auditor decision log (:mod:`ccmlib.overrides`); overturned findings stay in
    the findings with the decision beside them and no longer take units away. ``qp_npis`` names billing NPIs that
    are qualifying APM participants (their lines priced from the QP rows of the fee table, where it has them).
    ``profile`` names a catalog variant (:mod:`ccmlib.engine.profiles`: a built-in name or a YAML file; default
    medicare-ffs): its severities, the rules it switches off and its pricing source; recorded in ``run["profile"]``.
    ``encounters_from`` (YYYY-MM-DD) declares where the visit history begins (IV-01, catalog v3), over mapping.yml's
    ``encounters_from``; without either, the earliest encounter or visit claim is the start (``run["visit_history"]``).
    ``keep_facts=False`` keeps of the facts only what the run folder's summary reads (:meth:`Facts.keep_for_summary`),
    as ``ccm-audit check`` does: the views (:meth:`AuditResult.entries`, :meth:`AuditResult.patient_month`) then need
    a fresh audit. ``whole`` is what a shard of a practice (:mod:`ccmlib.engine.shards`) takes from the whole of it."""
    started = datetime.now(timezone.utc)
    per = period if isinstance(period, Period) else parse_period(period, start, end)
    prof = profiles.load_profile(profile)
    ids, switched_off = profiles.rules_run(prof, select_rules(rules))
    fee_table, fee_notes = refdata.fee_schedule(fees)
    cmap = refdata.condition_map(conditions)
    practice = data if isinstance(data, Practice) else load_practice(data, progress=progress)
    visits_from, visits_declared_by = _declared_visits_from(encounters_from, practice)
    months_with_data = data_months(practice) if whole is None else whole.data_months
    loaded_here = not isinstance(data, Practice)  # then the facts are all the audit needs of its tables: they are let go
    facts = build_facts(practice, per, cmap, visits_from, release=loaded_here, visit_history=whole and whole.visit_history)
    if loaded_here:
        for name in [n for n in practice.tables if n != "staff"]:  # the staff directory is read from the practice
            practice.tables.pop(name)
    years = {str(k // 12) for k in facts.period.keys}
    fee_notes = [n["problem"] for n in fee_notes if str(n["from"].year) in years or str(n["to"].year) in years]
    qp_npis = normalized_npis(qp_npis)
    raw, status = _run_rules(facts, ids, progress)
    raw, status = profiles.apply(raw, prof, facts), status + switched_off
    raw["fid"] = np.arange(len(raw))
    raw["service_month"] = key_to_label(raw["mkey"].astype("int64")) if len(raw) else pd.Series([], dtype="object")
    raw["found_by"] = "engine"
    log = review.in_period(review.load(overrides), set(key_to_label(np.array(sorted(facts.period.keys))))) if overrides else None
    log_refs = None
    if log is not None and len(log):
        months = pd.DataFrame({"patient_id": facts.pm["patient_id"].astype(str), "service_month": key_to_label(facts.pm["mkey"].astype("int64"))})
        lines_ = facts.lines.assign(_pm=facts.lines["patient_id"].astype(str) + "|" + key_to_label(facts.lines["mkey"].astype("int64")))
        keys = set(review.finding_key(raw))
        if whole is None:
            review.check_log(log, overrides, keys, lines_, months, load_all())
        else:  # a shard: the log is checked when every shard is done, on what each holds of it (shards._merge)
            log_refs = review.log_refs(log, keys, lines_, months)
        added = review.added_findings(log if whole is None else review.on_months(log, months), facts.lines, load_all())
        if len(added):
            added["mkey"] = [parse_period(m).first for m in added["service_month"]]
            added["fid"] = np.arange(len(raw), len(raw) + len(added))
            raw = pd.concat([raw, added], ignore_index=True)
    decisions = review.latest(log) if log is not None else review.latest(review.load(None))
    overturned = pd.Series(False, index=raw.index)
    if len(decisions):
        overturned = raw.assign(k=review.finding_key(raw))["k"].isin(decisions.loc[decisions["decision"] == "overturn", "finding_key"])

    billed_pm = facts.pm.loc[facts.pm["billed"], PM]
    keep = (raw["scope"].isin(["line", "entry", "pm_all"])) | raw[PM].merge(billed_pm.assign(_b=True), on=PM, how="left")["_b"].notna().to_numpy()
    kept = raw[keep]
    lines = facts.lines
    prices = unit_values(lines, fee_table, qp_npis, prof.pricing)
    effects = expand_effects(kept[~overturned[keep]], lines)
    settled = settle_lines(lines, effects, prices)
    settled["rule_ids"] = _line_rules(effects, kept, settled)
    eff_val = effects.merge(settled[["claim_id", "line", "unit_value"]], on=["claim_id", "line"])
    amount = (eff_val["units_removed"] * eff_val["unit_value"]).groupby(eff_val["fid"]).sum(min_count=1)  # blank: unpriced
    touched = set(eff_val["fid"])
    findings = kept.assign(amount=np.where(kept["fid"].isin(touched), kept["fid"].map(amount), 0.0).round(2))

    pmo = facts.pm.copy(deep=False)  # the facts' frame stays as it is: a column set here is pmo's own
    pmo["missed_amount"] = 0.0
    findings, status = _second_phase(facts, ids, status, raw[~overturned], fee_table, findings, pmo)
    del raw, kept, effects, eff_val, prices  # let go before the output tables are made (the peak of a large audit)

    dq = [practice.quality]
    iv_not_assessed = 0
    for s in status:
        if s["status"] == "not_run":
            dq.append(pd.DataFrame([{"table": "", "file": "", "line": pd.NA, "column": "", "problem": f"rule {s['rule_id']} could not run: {s['reason']}", "value": "", "action": "note"}]))
    if "IV-01" in ids and "IV-01" not in [s["rule_id"] for s in status if s["status"] == "not_run"]:
        st = practitioner_visit_status(facts)
        unk = st[~st["visit_found"] & ~st["covered"]]
        iv_not_assessed = int(len(unk[PM].drop_duplicates()))
        unk = unk.drop_duplicates(["patient_id", "billing_npi", "commencement"])
        if len(unk):
            begins = f"{facts.visits_from:%Y-%m-%d} ({'declared' if facts.visits_from_source == 'declared' else 'the earliest encounter or visit claim'})"
            dq.append(pd.DataFrame({"table": "encounters", "file": "", "line": pd.NA, "column": "encounter_date",
                                    "problem": "the visit history begins on " + begins + ", after the one-year window before CCM "
                                    "commencement on " + unk["commencement"].dt.strftime("%Y-%m-%d").fillna("?") + " begins ("
                                    + unk["window_start"].dt.strftime("%Y-%m-%d").fillna("?") + "), and no initiating visit was "
                                    "found; IV-01 not assessed for patient " + unk["patient_id"].astype(str) + ", NPI "
                                    + unk["billing_npi"].astype(str), "value": "", "action": "note"}))
    for n in fee_notes:
        dq.append(pd.DataFrame([{"table": "fee_schedule", "file": str(fees or "fee_schedule.csv (bundled)"), "line": pd.NA, "column": "amount",
                                 "problem": n, "value": "", "action": "note"}]))
    no_value = settled[settled["price_source"] == "unpriced"]
    if len(no_value):
        effect = np.where(no_value["units_supported"] < no_value["units"], "overpayment left blank (unpriced, not counted as 0)",
                          "line supported; no dollar value")
        dq.append(pd.DataFrame({"table": "claims", "file": "", "line": no_value["_line"].to_numpy() if "_line" in no_value else pd.NA,
                                "column": "paid_amount",
                                "problem": ("no paid_amount (profile " + prof.name + ": the paid amount is the only price) for "
                                            if prof.pricing == "paid_only" else "no paid_amount and no fee-schedule amount for ") + no_value["cpt_code"].astype(str) + " on "
                                + no_value["service_date"].dt.strftime("%Y-%m-%d") + ": " + effect + " for claim "
                                + no_value["claim_id"].astype(str) + " line " + no_value["line"].astype(str), "value": "",
                                "action": "note"}))
    dq = [d for d in dq if len(d)]
    data_quality = sort_quality(pd.concat(dq, ignore_index=True)[DQ_COLUMNS] if dq else empty_quality())
    if not keep_facts:
        facts.keep_for_summary()

    findings = _with_decisions(findings, decisions)
    result = AuditResult(
        findings=_findings_table(findings),
        claim_lines=_claim_lines_table(settled),
        patient_months=_patient_months_table(pmo, lines, settled, findings),
        data_quality=data_quality,
        run={}, facts=facts)
    result.decisions = decisions
    result.review_trail = review.trail(result.findings, log) if overrides and whole is None else None  # (shards: merged)
    result.run = _run_record(practice, facts.period, ids, status, fee_table, fee_notes, fees, conditions, result, started)
    result.run["fee_schedule"].update(_pricing_summary(result.claim_lines, fee_table, qp_npis))
    result.run["fee_schedule"].update(medicare_share=refdata.MEDICARE_SHARE, sequestration_rates=sorted(
        {round(float(x), 4) for x in settled.loc[settled["price_source"] == "fee_schedule", "sequestration"].dropna()}))
    result.run["summary"]["iv01_not_assessed_patient_months"] = iv_not_assessed
    result.run["visit_history"] = {"start": None if pd.isna(facts.visits_from) else f"{facts.visits_from:%Y-%m-%d}",
                                   "source": facts.visits_from_source, "declared_by": visits_declared_by}
    result.run["profile"] = prof.to_json()
    result.run["data_months"] = months_with_data
    if overrides and whole is None:  # a shard's decisions are counted on the merged findings (shards._merge)
        result.run["overrides"] = overrides_record(overrides, result.review_trail)
    result.log_refs = log_refs
    return result


def overrides_record(overrides, trail: pd.DataFrame) -> dict:
    """run.json's ``overrides``: the decision log applied (file, hash) and its decisions counted from the trail."""
    applied = trail["status"] == "applied"
    return {"file": str(overrides), "sha256": sha256(Path(overrides)) if Path(overrides).is_file() else None,
            "decisions": int(len(trail)), "applied": int(applied.sum()),
            "overturned": int((applied & (trail["decision"] == "overturn")).sum()),
            **{f"{d}ed" if d != "accept" else "accepted": int((applied & (trail["decision"] == d)).sum())
               for d in ("accept", "confirm", "add")},
            "no_longer_raised": int((~applied).sum())}


def normalized_npis(npis) -> tuple[str, ...]:
    """The qualifying APM participants' NPIs as a run records them: text, trimmed, distinct, sorted."""
    return tuple(sorted({str(n).strip() for n in (npis or ()) if str(n).strip()}))


def _declared_visits_from(option, practice: Practice):
    """The declared start of the visit history and who declared it: the option (``--encounters-from``), else the
    practice folder's mapping.yml (``encounters_from``); (None, None) when neither does."""
    from ccmlib.intake.dates import option_date
    from ccmlib.intake.sources import encounters_from

    if option is not None:
        return option_date(option, "--encounters-from"), "--encounters-from"
    declared = encounters_from(practice.folder)
    return (declared, "mapping.yml") if declared is not None else (None, None)


def _line_rules(effects: pd.DataFrame, kept: pd.DataFrame, settled: pd.DataFrame) -> np.ndarray:
    """The error rules that took units away from each claim line, as ``RULE-01;RULE-02`` ('' for a supported line)."""
    import pyarrow.compute as pc

    out = np.full(len(settled), "", dtype=object)
    if effects.empty:
        return out
    e = effects.loc[effects["units_removed"] > 0, ["fid", "claim_id", "line"]].merge(kept[["fid", "rule_id"]], on="fid")
    # (claim_id, line) as one integer per line: the claim's code among the settled lines' claims, the line number's
    # code among both frames' line numbers (a line the settled lines do not hold gets no key)
    s_claim, claims = pd.factorize(settled["claim_id"])
    e_claim = _codes_in(e["claim_id"], pd.Index(claims))
    s_no = settled["line"].to_numpy(dtype="float64", na_value=np.nan)
    nos, no_uniq = pd.factorize(np.concatenate([s_no, e["line"].to_numpy(dtype="float64", na_value=np.nan)]))
    width = len(no_uniq) + 1
    s_key = np.where((s_claim >= 0) & (nos[:len(s_no)] >= 0), s_claim.astype(np.int64) * width + nos[:len(s_no)], -1)
    e_no = nos[len(s_no):]
    e_key = np.where((e_claim >= 0) & (e_no >= 0), e_claim * width + e_no, -1)
    # each line's distinct rules in text order (rule codes sorted as text), joined with ';' once per line
    rule, rules = pd.factorize(e["rule_id"], sort=True)
    ok = (e_key >= 0) & (rule >= 0)
    pairs = np.unique(e_key[ok] * max(len(rules), 1) + rule[ok])
    if not len(pairs):
        return out
    line_of, rule_of = pairs // max(len(rules), 1), pairs % max(len(rules), 1)
    starts = np.flatnonzero(np.r_[True, line_of[1:] != line_of[:-1]])
    names = pa.array(pd.Series(rules).astype(str).to_numpy(dtype=object), type=pa.string()).take(pa.array(rule_of))
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(np.r_[starts, len(pairs)].astype(np.int32)), names), ";")
    keys = line_of[starts]
    at = np.clip(np.searchsorted(keys, s_key), 0, len(keys) - 1)
    hit = keys[at] == s_key
    out[hit] = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)[at[hit]]
    return out


def _pricing_summary(cl: pd.DataFrame, fee_table: pd.DataFrame, qp_npis) -> dict:
    """Which fee table, settings and conversion factors priced the lines (the report states it)."""
    by_fee = cl[cl["price_source"] == "fee_schedule"]
    return {
        "table": fee_table.attrs.get("label", ""),
        "qualifying_apm_npis": list(qp_npis),
        "lines_by_price_source": {k: int(v) for k, v in cl["price_source"].value_counts().sort_index().items()},
        "fee_settings": {k: int(v) for k, v in by_fee["fee_setting"].value_counts().sort_index().items()},
        "conversion_factors": sorted({float(x) for x in by_fee["conversion_factor"].dropna()}),
    }


def _with_decisions(findings: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    f = findings.assign(service_month=key_to_label(findings["mkey"].astype("int64")) if len(findings) else "")
    if decisions.empty:
        return f.assign(review_decision="", reviewed_by="", reviewed_at="", review_reason="")
    d = decisions[["finding_key", "decision", "reviewer", "decided_at", "reason"]].rename(columns={
        "decision": "review_decision", "reviewer": "reviewed_by", "decided_at": "reviewed_at", "reason": "review_reason"})
    out = f.assign(finding_key=review.finding_key(f)).merge(d, on="finding_key", how="left").drop(columns="finding_key")
    cols = ["review_decision", "reviewed_by", "reviewed_at", "review_reason"]
    out[cols] = out[cols].astype(object).where(out[cols].notna(), "")
    return out


def _as_string(s: pd.Series) -> pd.Series:
    """``s.astype("string")``; a categorical of text decoded by Arrow from its codes (each category's text made once,
    the rows gathered in C) instead of a Python string per row."""
    cats = s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else None
    if cats is None or not pd.api.types.is_string_dtype(cats):
        return s.astype("string")
    names = pa.array(cats.array) if isinstance(cats.array, pd.arrays.ArrowStringArray) else pa.array(cats.to_numpy(dtype=object))
    names = names.combine_chunks() if isinstance(names, pa.ChunkedArray) else names
    codes = s.cat.codes.to_numpy()
    text = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), names.cast(pa.large_string())).dictionary_decode()
    return pd.Series(pd.arrays.ArrowStringArray(text), index=s.index, name=s.name)


def _sort_order(keys: list[pd.Series], na_position: str = "last") -> np.ndarray:
    """The row order of ``sort_values(keys, kind="mergesort", na_position=...)`` (a stable sort), without ranking a
    key where the earlier keys already order the rows: each key is ranked only on the rows still tied (a long message
    column is looked at for the few findings that tie on everything before it)."""
    n = len(keys[0]) if keys else 0
    group, groups = np.zeros(n, dtype=np.int64), 1 if n else 0  # dense rank of the rows on the keys so far
    for s in keys:
        if groups == n:
            break
        tied = np.bincount(group, minlength=groups)[group] > 1
        rows = None if tied.all() else np.flatnonzero(tied)
        r = sort_ranks(s, rows)
        top = int(r.max()) + 1 if len(r) else 0
        r = r + 1 if na_position == "first" else np.where(r < 0, top, r)  # missing first (0) or last (top)
        if rows is not None:
            full = np.zeros(n, dtype=np.int64)
            full[rows] = r
            r = full
        _, group = np.unique(group * (top + 1) + r, return_inverse=True)
        group = group.reshape(-1).astype(np.int64)
        groups = int(group.max()) + 1 if n else 0
    return np.argsort(group, kind="stable")


def _findings_table(f: pd.DataFrame) -> pd.DataFrame:
    out = f.assign(service_month=key_to_label(f["mkey"].astype("int64")) if len(f) else "")
    for c in FINDING_COLUMNS:
        if c not in out.columns:
            out[c] = pd.NA
    out = out[FINDING_COLUMNS]  # no copy: the columns below are replaced, and take() copies every row once
    out["line"] = pd.to_numeric(out["line"], errors="coerce").astype("Int64")
    for c in ("patient_id", "claim_id", "cpt_code", "billing_npi", "entry_id"):
        out[c] = _as_string(out[c])
    order = _sort_order([out[c] for c in ("patient_id", "service_month", "rule_id", "claim_id", "line", "billing_npi",
                                          "entry_id", "message")], na_position="first")
    return out.take(order).reset_index(drop=True)


def _claim_lines_table(s: pd.DataFrame) -> pd.DataFrame:
    month = key_to_label(s["mkey"].astype("int64")) if len(s) else ""
    out = s.assign(service_month=month, units_billed=s["units"], claim_id=_as_string(s["claim_id"]))[CLAIM_LINE_COLUMNS]
    # the ids are sorted as the text they are written as; facts keep patient ids as categoricals (ranked per category)
    order = _sort_order([out["patient_id"], out["service_month"], out["service_date"], out["claim_id"], out["line"]])
    out = out.take(order).reset_index(drop=True)  # the one copy of the table (assign and [] above copy nothing)
    out["patient_id"] = _as_string(out["patient_id"])
    out["paid_amount"] = out["paid_amount"].round(2)
    return out


def _codes_in(s: pd.Series, cats: pd.Index) -> np.ndarray:
    """Position of each value of ``s`` in ``cats`` (-1 when absent or missing), looked up once per distinct value; a
    categorical on the same categories (the facts' patient ids share one list) gives its codes as they are."""
    if isinstance(s.dtype, pd.CategoricalDtype) and (s.cat.categories is cats or s.cat.categories.equals(cats)):
        return s.cat.codes.to_numpy().astype(np.int64)
    codes, uniq = pd.factorize(s)
    found = pd.Index(cats).get_indexer(uniq) if len(uniq) else np.array([], dtype=np.int64)
    return np.where(codes < 0, -1, found[codes] if len(found) else -1).astype(np.int64)


def _pm_rows(pm: pd.DataFrame, df: pd.DataFrame) -> np.ndarray:
    """The row of ``pm`` (one row per patient-month) holding each row's patient-month, -1 for none: what a left merge
    of ``pm`` with ``df`` on (patient_id, mkey) pairs, found on integer keys (the patient's position in pm's patient
    categories and the month key) instead of by merging text."""
    from ccmlib.engine.sqlfacts import patient_month_rows

    p = pm["patient_id"]
    cats = p.cat.categories if isinstance(p.dtype, pd.CategoricalDtype) else pd.Index(pd.unique(p.dropna()))
    pc_ = _codes_in(df["patient_id"], cats)
    m = df["mkey"].astype("Int64").to_numpy(dtype="int64", na_value=-1)  # a missing month matches no row
    rows = patient_month_rows(pc_, m, _codes_in(p, cats), pm["mkey"].to_numpy(dtype="int64"))
    return np.where(pc_ >= 0, rows, -1)  # an unknown or missing patient matches no row


def _units_label(rows: np.ndarray, lines: pd.DataFrame, units: str, n: int) -> pd.Series:
    """codes_label of the ``units`` per patient-month row and CCM code ('' for a row with none), given the columns of
    the codes the lines with a patient-month hold, as the pivot this replaces had them; text (str) when there is one,
    else object, as the pivot, merge and fillna gave it."""
    from ccmlib.reference.codes import CCM_CODES

    code = _codes_in(lines["cpt_code"], pd.Index(list(CCM_CODES)))
    keyed = (code >= 0) & lines["patient_id"].notna().to_numpy() & lines["mkey"].notna().to_numpy()
    present = np.unique(code[keyed])  # the pivot's CCM code columns, in CCM order
    ok = (rows >= 0) & (code >= 0)
    k = len(CCM_CODES)
    counts = np.bincount(rows[ok] * k + code[ok], weights=lines[units].fillna(0).to_numpy(dtype="float64")[ok], minlength=n * k)
    counts = pd.DataFrame(counts.reshape(n, k)[:, present].astype(np.int64), columns=[CCM_CODES[i] for i in present])
    labels = codes_label(counts).to_numpy(dtype=object)
    return pd.Series(labels, dtype="str" if len(present) else object)


def _patient_months_table(pm: pd.DataFrame, lines: pd.DataFrame, settled: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """patient_months.csv: pm's rows (patient-months) with the codes billed and supported, the money of their lines and
    the count of standing errors and warnings, sorted by patient and month. Lines and findings are placed on pm's rows
    by integer keys (:func:`_pm_rows`) and summed per row (groupby on the row number sums in the lines' order, as a
    groupby on the keys did)."""
    n = len(pm)
    line_rows, settled_rows = _pm_rows(pm, lines), _pm_rows(pm, settled)
    out = {"patient_id": _as_string(pm["patient_id"]), "service_month": pm["service_month"]}
    for c in ("qualifying_minutes", "practitioner_minutes", "documented_minutes"):
        out[c] = pm[c].round(2)
    out["chronic_conditions"] = pm["chronic_conditions"]
    out["codes_billed"] = _units_label(line_rows, lines, "units", n)
    out["codes_supported"] = _units_label(settled_rows, settled, "units_supported", n)
    on = settled_rows >= 0
    money = settled.loc[on, ["overpayment", "cost_sharing"]].groupby(settled_rows[on]).sum().reindex(np.arange(n))
    for c in ("overpayment", "cost_sharing"):
        out[c] = money[c].fillna(0.0).round(2).to_numpy()
    out["missed_amount"] = pm["missed_amount"].fillna(0.0).round(2)
    for c in ("date_20min", "date_40min", "date_60min"):
        out[c] = pm[c]
    standing = (findings["review_decision"] != "overturn").to_numpy() & findings["rule_id"].notna().to_numpy()
    f_rows = _pm_rows(pm, findings)
    for c, sev in (("errors", "error"), ("warnings", "warning")):
        sel = standing & (f_rows >= 0) & (findings["severity"] == sev).to_numpy(dtype=bool, na_value=False)
        out[c] = np.bincount(f_rows[sel], minlength=n).astype("int64")
    out = pd.DataFrame({c: (v.reset_index(drop=True) if isinstance(v, pd.Series) else pd.Series(v)) for c, v in out.items()})
    ids = pm["patient_id"] if isinstance(pm["patient_id"].dtype, pd.CategoricalDtype) else out["patient_id"]
    order = _sort_order([ids, out["service_month"]])  # ids sorted as text
    return out.take(order).reset_index(drop=True)


def data_months(practice: Practice) -> dict | None:
    """The first and last month with a CCM-family claim line or a time entry in the practice's data (for the message
    when a period has none)."""
    return months_between([data_dates(name, practice[name]) for name in ("claims", "time_entries") if practice.has(name)])


def data_dates(name: str, df: pd.DataFrame) -> pd.Series:
    """The earliest and latest date :func:`data_months` reads from one table (claims: their CCM-family lines' service
    dates; time entries: their days); none for another table or one without dates."""
    from ccmlib.reference.codes import CCM_CODES

    d = pd.Series([], dtype="datetime64[ns]")
    if name == "claims" and len(df):
        d = df.loc[df["cpt_code"].isin(CCM_CODES), "service_date"].dropna()
    elif name == "time_entries" and len(df):
        d = df["activity_date"].dropna()
    return pd.Series([d.min(), d.max()], dtype=d.dtype) if len(d) else d


def months_between(ends: list[pd.Series]) -> dict | None:
    """{"from", "to"}: the months of the earliest and latest of the dates ``ends`` (None when there are none)."""
    ends = [d for d in ends if len(d)]
    if not ends:
        return None
    k = month_key(pd.concat(ends))
    return {"from": str(key_to_label(np.array([int(k.min())]))[0]), "to": str(key_to_label(np.array([int(k.max())]))[0])}


def empty_period_message(run: dict) -> str | None:
    """A message when the period holds no CCM claim line and no time entry, naming the months the data covers."""
    s = run["summary"]
    if s["claim_lines"] or s["patient_months"]:
        return None
    dm = run.get("data_months")
    where = f"the data covers {dm['from']} to {dm['to']}" if dm else "the data has no CCM claim lines or time entries at all"
    return f"no CCM claim lines or time entries in {run['period']['label']}; {where}"


def core_summary(f: pd.DataFrame, cl: pd.DataFrame, pm: pd.DataFrame) -> dict:
    """The headline figures of findings, claim lines and patient-months (after auditor decisions): the part of the
    summary that adds up over months, so that a span's result can be cut into quarters (:func:`quarter_summaries`)."""
    standing = f.loc[(f["review_decision"] != "overturn").to_numpy(), ["severity", "rule_id", "amount"]]
    sev_code, sev_uniq = pd.factorize(standing["severity"])  # each severity compared once, not every finding three times
    sev_at = {s: i for i, s in enumerate(sev_uniq)}
    is_sev = lambda s: sev_code == sev_at.get(s, -2)  # noqa: E731
    sev_n = np.bincount(sev_code[sev_code >= 0], minlength=len(sev_uniq))
    paid = round(float(cl["paid_amount"].fillna(0).sum()), 2)
    over = round(float(cl["overpayment"].fillna(0).sum()), 2)
    bad = int((cl["determination"].isin(NOT_SUPPORTED)).sum())
    out = {
        "patient_months": int(len(pm)),
        "patient_months_with_error": int((pm["errors"] > 0).sum()),
        "billed_patient_months": int((pm["codes_billed"].fillna("") != "").sum()),
        "claim_lines": int(len(cl)),
        "claim_lines_not_supported": bad,
        "error_rate_count": bad / len(cl) if len(cl) else 0.0,
        "paid_amount": paid,
        "overpayment": over,
        "cost_sharing": round(float(cl["cost_sharing"].fillna(0).sum()), 2),
        "allowed_unsupported": round(float(cl["allowed_unsupported"].fillna(0).sum()), 2),
        "denied_lines": int((cl["determination"] == "denied").sum()),
        "error_rate_dollars": over / paid if paid else 0.0,
        "unpriced_lines": int((cl["price_source"] == "unpriced").sum()),
        "unpriced_lines_not_supported": int(cl["overpayment"].isna().sum()),
        "missed_amount": round(float(pm["missed_amount"].sum()), 2),
        "findings": {s: int(sev_n[sev_at[s]]) if s in sev_at else 0 for s in ("error", "warning", "info")},
        "rules_with_errors": sorted(standing.loc[is_sev("error"), "rule_id"].unique().tolist()),
        "overturned": int((f["review_decision"] == "overturn").sum()),
        "by_rule": indicators.by_rule(f),
        # what the per-rule dollars add up to: more than the overpayment, since one line can fail several rules
        "per_rule_amounts_total": round(float(standing.loc[~is_sev("info"), "amount"].fillna(0).sum()), 2),
    }
    billed = out["billed_patient_months"]
    out["errors_per_100_billed_patient_months"] = round(100 * out["findings"]["error"] / billed, 1) if billed else 0.0
    out["overpayment_per_claim_line"] = round(over / len(cl), 2) if len(cl) else 0.0
    return out


def quarter_summaries(res: AuditResult) -> dict[str, dict]:
    """:func:`core_summary` of every calendar quarter a run over several months covers (month-level rules make a
    quarter of a longer run identical to a run of that quarter; the trend uses this to audit earlier quarters once)."""
    out = {}
    span = res.run["period"]
    first, last = parse_period(span["from"]).first, parse_period(span["to"]).first
    for q in range(first // 3, last // 3 + 1):
        lo, hi = key_to_label([q * 3, q * 3 + 2])
        sel = lambda d: d[(d["service_month"] >= lo) & (d["service_month"] <= hi)]
        out[quarter_label(q * 3)] = core_summary(sel(res.findings), sel(res.claim_lines), sel(res.patient_months))
    return out


DETAILS = ("by_practitioner", "by_month", "by_staff", "risk_indicators")


def add_details(res: AuditResult) -> dict:
    """Add the breakdowns by practitioner, month and staff member and the risk indicators to the run's summary (once;
    every run folder, report and workbook has them). Kept out of :func:`audit` itself: the many audits that only need
    the findings (the trend, the pre-bill review, chart-size checks) do not pay for them."""
    s = res.run["summary"]
    s.update({name: part() for name, part in _detail_parts(res)})
    return s


def _detail_parts(res: AuditResult) -> list[tuple[str, object]]:
    """The summary's details as (name, function) in :data:`DETAILS` order, each independent of the others, so that a
    large run folder computes them beside its tables' files (:func:`write_outputs`); none once they are there."""
    if all(k in res.run["summary"] for k in DETAILS):
        return []
    cl, pm = res.claim_lines, res.patient_months
    return [("by_practitioner", lambda: indicators.by_practitioner(cl)), ("by_month", lambda: indicators.by_month(cl)),
            ("by_staff", lambda: res.facts_details["by_staff"] if res.facts_details else
             _by_staff(res.facts, pm) if res.facts is not None else []),
            ("risk_indicators", lambda: indicators.risk_indicators(res))]


def _by_staff(f: Facts, pm: pd.DataFrame) -> list[dict]:
    """indicators.by_staff read from the time entries' store in place (sqlfacts.staff_breakdown)."""
    from ccmlib.engine.sqlfacts import staff_rows_of

    return staff_rows_of([staff_counts(f, pm)])


def staff_counts(f: Facts, pm: pd.DataFrame) -> list[tuple]:
    """sqlfacts.staff_counts of the billed patient-months of ``pm``, as the store's integer keys (patient code in the
    shared categories, month key)."""
    from ccmlib.engine.sqlfacts import staff_counts as counts

    cats = f.store.dtypes["patient_id"].categories  # patient ids are categoricals shared by every table (facts.encoded_tables)
    billed = pm[pm["codes_billed"].fillna("") != ""]
    mcodes, labels = pd.factorize(billed["service_month"])
    mkeys = np.array([parse_period(x).first for x in labels], dtype="int64")  # a handful of distinct months
    keyed = pd.DataFrame({"_p": pd.Categorical(billed["patient_id"].astype(object), categories=cats).codes,
                          "_m": mkeys[mcodes] if len(mkeys) else np.array([], dtype="int64"), "errors": billed["errors"].to_numpy()})
    return counts(f.store, keyed[keyed["_p"] >= 0])


def headline_summary(res: AuditResult) -> dict:
    """Every headline figure of a run, computed once, after auditor decisions (overturned findings do not count):
    run.json's ``summary``, which the report, the workbook, the portfolio and the chart review read."""
    f, cl, pm = res.findings, res.claim_lines, res.patient_months
    out = core_summary(f, cl, pm)
    out.update({
        "data_quality_rows": int(len(res.data_quality)),
        "sampled": res.sample is not None,
    })
    if res.sample is not None:
        smp = res.sample[~res.sample["spare"]]
        out.update({"sample_size": int(len(smp)), "sample_in_error": int((smp["difference"] > 0).sum()),
                    "sample_overpayment": round(float(smp["difference"].sum()), 2),
                    "sample_examined": round(float(smp["examined"].sum()), 2),
                    "sample_undecided": int((smp["review_state"] != "decided").sum()) if "review_state" in smp else int(len(smp)),
                    "sample_error_rate_count": float((smp["difference"] > 0).mean()) if len(smp) else 0.0,
                    "sample_error_rate_dollars": float(smp["difference"].sum() / smp["examined"].sum()) if smp["examined"].sum() else 0.0,
                    "frame_size": int(res.run["sample"]["frame_size"]), "seed": res.run["sample"]["seed"]})
        dem = (res.run.get("appraisal") or {}).get("demand")
        if dem:
            out.update({"estimate_point": round(dem["point_estimate"], 2), "estimate_lower_90": round(dem["lower_90_two_sided"], 2),
                        "estimate_lower_80": round(dem["lower_80_two_sided"], 2)})
            if dem.get("precision_90_pct") is not None:
                out["estimate_precision_90_pct"] = round(float(dem["precision_90_pct"]), 2)
    return out


def _run_record(practice: Practice, period: Period, ids, status, fee_table, fee_notes, fees, conditions, res: AuditResult, started) -> dict:
    return {
        "tool": "ccm-audit",
        "inputs": practice.inputs,
        "data_folder": str(Path(practice.folder).resolve()),
        "mapping": ({"file": str(practice.folder / "mapping.yml"), "sha256": sha256(practice.folder / "mapping.yml")}
                    if (practice.folder / "mapping.yml").is_file() else None),
        "ingest": _ingest_record(practice),
        "period": period.to_json(),
        "rule_catalog_version": RULE_CATALOG_VERSION,
        "rules": status,
        "fee_schedule": {"source": str(fees) if fees else "bundled (CMS PFS national, CY2024-CY2026, facility and non-facility)",
                         "notes": fee_notes},
        "condition_map": {"source": str(conditions) if conditions else "bundled CCW map", "icd10": refdata.icd10_version()},
        "seed": None,
        "sample": None,
        "staff": _staff_directory(practice),
        "summary": headline_summary(res),
        "packages": package_versions(),
        "command": " ".join(sys.argv),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _staff_directory(practice: Practice) -> list[dict]:
    """Who the staff ids and billing NPIs are (id, role, and name and NPI when the staff table gives them), so that a
    report names staff with their roles and practitioners by name, from the run folder alone."""
    if not practice.has("staff"):
        return []
    st = practice["staff"].drop_duplicates("staff_id").sort_values("staff_id", kind="mergesort")
    cols = [c for c in ("staff_id", "role", "name", "npi") if c in st.columns]
    return [{c: (None if pd.isna(v) else str(v)) for c, v in zip(cols, row)} for row in st[cols].itertuples(index=False)]


def _ingest_record(practice: Practice) -> dict | None:
    """The source files behind a folder `ccm-audit ingest` built (837/835/FHIR with their hashes and reconciliation) and
    the records it could not map, with the paid dollars they hold."""
    doc = practice.ingest
    if not doc:
        return None
    dq = practice.ingest_quality
    rej = dq[dq["action"] == "rejected"] if dq is not None else pd.DataFrame(columns=["paid_amount"])
    return {"ingest_json_sha256": doc.get("sha256"), "data_quality_sha256": doc.get("data_quality_sha256"),
            "sources": [{k: s.get(k) for k in ("file", "format", "sha256", "records_read", "records_mapped", "records_rejected",
                                               "paid_read", "paid_mapped", "paid_rejected", "reconciles", "notes")}
                        for s in doc.get("sources", [])],
            "copied_tables": doc.get("copied_tables", []),
            "records_rejected": int(len(rej)), "paid_rejected": round(float(rej["paid_amount"].sum()), 2)}


def _csv(df: pd.DataFrame) -> str:
    """The CSV text of an output table, as pandas' ``to_csv`` writes it (minimal quoting, floats as repr, dates as
    YYYY-MM-DD, missing as empty), built column-wise with Arrow kernels; pandas writes any table with a column
    type the fast path does not know."""
    return _csv_bytes(df).decode("utf-8")


def _csv_bytes(df: pd.DataFrame) -> bytes:
    """:func:`_csv` as the UTF-8 bytes written to the file (what :func:`_write_csv` writes, held whole)."""
    try:
        return b"".join(_csv_stream(df))
    except (TypeError, ValueError, pa.ArrowException):
        return _csv_pandas(df).encode("utf-8")


#: rows of a table turned into CSV text at a time: the text of the columns and rows of one slice is all the writer holds
CSV_CHUNK_ROWS = 262_144


def _csv_pandas(df: pd.DataFrame) -> str:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            text = np.datetime_as_string(out[c].to_numpy(dtype="datetime64[ns]"), unit="D")  # C speed; strftime is slow
            out[c] = np.where(out[c].isna().to_numpy(), "", text)
    return out.to_csv(index=False, lineterminator="\n")


def _text_array(s: pd.Series) -> pa.Array:
    """A text column as an Arrow large_string array (zero-copy when pandas already keeps it in Arrow)."""
    if isinstance(s.dtype, pd.StringDtype) or type(s.array).__name__.startswith("Arrow"):
        arr = pa.array(s.array)
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return arr.cast(pa.large_string())
    return pa.array(s.to_numpy(dtype=object, na_value=None), type=pa.large_string(), from_pandas=True)


def _take_text(texts: np.ndarray, codes: np.ndarray) -> pa.Array:
    """``texts[codes]`` as Arrow large strings, null where the code is -1 (a missing value)."""
    return pa.array(texts, type=pa.large_string()).take(pa.array(codes, mask=codes < 0))


def _quote_text(arr: pa.Array) -> pa.Array:
    """A text column with pandas' minimal quoting: a value holding a comma, a double quote or a line break is written in
    double quotes with its quotes doubled. The column's bytes are searched first (one fast scan: most columns hold
    none of those characters); then only the values that need it are quoted and put back in place by one take."""
    import pyarrow.compute as pc

    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]  # the values' bytes: of a slice, only its own range is looked at
    raw = data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes() if data is not None and len(arr) else b""
    if not any(ch in raw for ch in (b",", b'"', b"\r", b"\n")):
        return arr
    where = pc.indices_nonzero(pc.match_substring_regex(arr, '[,"\r\n]')).to_numpy()
    if not len(where):
        return arr
    quote, empty = pa.scalar('"', pa.large_string()), pa.scalar("", pa.large_string())
    quoted = pc.binary_join_element_wise(quote, pc.replace_substring(arr.take(pa.array(where)), '"', '""'), quote, empty)
    pick = np.arange(len(arr), dtype=np.int64)
    pick[where] = len(arr) + np.arange(len(where), dtype=np.int64)
    return pa.concat_arrays([arr, quoted]).take(pa.array(pick))


def _csv_stream(df: pd.DataFrame):
    """The header's bytes, then the text of each slice of ``CSV_CHUNK_ROWS`` rows, made as they are asked for."""
    import csv
    import io

    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow([str(c) for c in df.columns])
    yield head.getvalue().encode("utf-8")
    for i in range(0, len(df), CSV_CHUNK_ROWS):
        yield _csv_rows(df.iloc[i:i + CSV_CHUNK_ROWS])


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    """Write :func:`_csv` of ``df`` slice by slice as it is made (the text of one slice held at a time); a table the
    Arrow path cannot write is written again, whole, by pandas."""
    with open(path, "wb") as fh:
        try:
            for part in _csv_stream(df):
                fh.write(part)
        except (TypeError, ValueError, pa.ArrowException):
            fh.seek(0)
            fh.truncate()
            fh.write(_csv_pandas(df).encode("utf-8"))


def _csv_rows(df: pd.DataFrame) -> pa.Buffer:
    """The CSV text of the rows of ``df`` (no header), each row ending with a newline: the values buffer of the joined
    rows, sliced without a copy."""
    import pyarrow.compute as pc

    cols = []
    for c in df.columns:
        s = df[c]
        numpy_dtype = not isinstance(s.dtype, pd.api.extensions.ExtensionDtype)
        if pd.api.types.is_datetime64_any_dtype(s):  # days and amounts repeat: each distinct value is formatted once
            codes, uniq = pd.factorize(s.to_numpy(dtype="datetime64[ns]"))
            arr = _take_text(np.datetime_as_string(np.asarray(uniq, dtype="datetime64[ns]"), unit="D"), codes)
        elif numpy_dtype and pd.api.types.is_float_dtype(s):
            v = s.to_numpy()
            if np.signbit(v[v == 0]).any():  # -0.0 and 0.0 factorize together but print differently
                arr = pa.array(v.astype(str), type=pa.large_string(), mask=np.isnan(v))
            else:
                codes, uniq = pd.factorize(v)
                arr = _take_text(np.asarray(uniq).astype(str), codes)  # numpy's str of a float is its repr
        elif numpy_dtype and pd.api.types.is_bool_dtype(s):
            arr = pa.array(np.where(s.to_numpy(), "True", "False"), type=pa.large_string())
        elif pd.api.types.is_integer_dtype(s):
            v = s.astype("Int64")
            arr = pa.array(v.to_numpy(dtype="int64", na_value=0), type=pa.int64(), mask=v.isna().to_numpy()).cast(pa.large_string())
        elif pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
            arr = _quote_text(_text_array(s))
        else:
            raise TypeError(f"column {c}: {s.dtype}")
        cols.append(arr)
    text = lambda v: pa.scalar(v, pa.large_string())  # noqa: E731
    # each row ends with a newline (put after the last value, missing or not): the values buffer is the file body
    cols[-1] = pc.binary_join_element_wise(cols[-1], text(""), text("\n"), null_handling="replace", null_replacement="")
    rows = pc.binary_join_element_wise(*cols, text(","), null_handling="replace", null_replacement="")
    del cols
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset: rows.offset + len(rows) + 1]
    return rows.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def write_outputs(result: AuditResult, out_dir, extra: dict[str, pd.DataFrame] | None = None) -> Path:
    """Write the run folder of the data contract: four CSVs and run.json (plus the sample, frame and decision trail, and
    ``extra`` tables as NAME.csv, such as the report's crosswalk from pseudonymous keys to patient ids).

    ``out_dir`` is a path or an open :class:`~ccmlib.outdir.RunFolder`. The folder must be new, empty or an earlier
    ``check`` run folder (see :mod:`ccmlib.outdir`); files are staged and moved into place whole, under a lock."""
    rf = out_dir if isinstance(out_dir, RunFolder) else RunFolder(out_dir, "check")
    with rf as folder:
        stage = folder.stage()
        tables = [("findings", result.findings), ("claim_lines", result.claim_lines),
                  ("patient_months", result.patient_months), ("data_quality", result.data_quality)]
        if result.review_trail is not None:
            tables.append(("overrides_applied", result.review_trail))
        if result.sample is not None:
            tables += [("sample", result.sample), ("frame", result.frame)]
        tables += list((extra or {}).items())
        # the summary's details and the tables' files are independent: on a large run two threads make them, the
        # longest first (the risk indicators and the staff breakdown, then the largest tables), each detail on its own
        parts = dict(_detail_parts(result))
        longest = [n for n in ("risk_indicators", "by_staff") if n in parts]
        work = [(n, parts[n], ()) for n in longest] + [(None, _write_csv, (stage / f"{name}.csv", df)) for name, df in tables] \
            + [(n, part, ()) for n, part in parts.items() if n not in longest]
        got = {n: r for (n, _, _), r in zip(work, map_ordered(lambda w: w[1](*w[2]), work, _output_threads(result))) if n}
        result.run["summary"].update({n: got[n] for n in DETAILS if n in got})  # in DETAILS' order, as add_details
        _write(stage / "run.json", json.dumps(result.run, indent=2, default=str) + "\n")
        folder.publish(stage)
        return folder.path


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
