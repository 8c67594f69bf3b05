"""Everything the quarterly-review notebook shows, computed and tested here; the notebook only displays it."""
from __future__ import annotations

import html
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ccmlib import paths
from ccmlib.engine import profiles
from ccmlib.engine.pipeline import AuditResult, attach_sample, audit, write_outputs
from ccmlib.errors import InputError
from ccmlib.intake.load import load_practice
from ccmlib.engine.periods import parse_period, quarter_label
from ccmlib.engine.rules import RULE_CATALOG_VERSION
from ccmlib.report import repayment, tables
from ccmlib.report.background import Background
from ccmlib.report.excel import write_workpapers
from ccmlib.report.privacy import engagement_root, ephemeral_salt, load_salt, patient_keys, pseudonymize
from ccmlib.report.show import money_text as money, percent_text as pct, plural

#: the report notebook's parameters: the run folder to render and how to present it (the audit's own options belong to
#: :func:`audit_for_report`, run before the notebook); checked once, before papermill starts
PARAMETERS = {"audit_dir": (str, type(None)), "practice_name": (str, type(None)), "output_dir": (str, type(None)),
              "show_identifiers": (bool,), "ledger": (str, type(None)), "prepared_by": (str, type(None)),
              "prepared_for": (str, type(None)), "final": (bool,), "repayment_path": (str, type(None)),
              "command": (str, type(None))}


def check_parameters(params: dict) -> dict:
    """Reject unknown names and wrong types (papermill injects anything with only a warning)."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InputError(f"unknown report parameter(s): {', '.join(unknown)} (known: {', '.join(PARAMETERS)})")
    for k, v in params.items():
        if not isinstance(v, PARAMETERS[k]) or (isinstance(v, bool) and bool not in PARAMETERS[k]):
            raise InputError(f"report parameter {k}={v!r} should be {' or '.join(t.__name__ for t in PARAMETERS[k])}")
    return params


def _escape_dollars(markdown: str) -> str:
    """Dollar signs would start LaTeX math in notebook Markdown."""
    return markdown.replace("$", "\\$")


def md_text(value) -> str:
    """A value from data or the user as inert Markdown text: HTML escaped (Markdown passes raw HTML through) and
    Markdown's own punctuation backslash-escaped."""
    text = html.escape(str(value), quote=False)  # &, < and >; quotes are text in Markdown (an entity would lose its #)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", text).replace("\n", " ")




def check_final(run: dict, final: bool) -> None:
    """A report is final only when every sampled unit has been reviewed against the chart."""
    rv = run.get("review") or {}
    if final and rv.get("undecided"):
        raise InputError(f"--final refused: {rv['undecided']} of {rv['sampled_units']} sampled units are still undecided (not "
                         f"reviewed against the chart). Record a decision for each (confirm, accept, overturn or add) with "
                         f"`ccm-audit review REPORT_DIR` or a decisions CSV (--overrides), then run the report again")


def recorded_quarters(ledger, practice: str) -> dict:
    """period -> headline of the last successful report of each quarter in the ledger (none without a ledger)."""
    import json

    from ccmlib.report.ledger import runs
    if not ledger:
        return {}
    hist = runs(Path(ledger), practice)
    if not len(hist):
        return {}
    ok = hist[(hist["status"] == "ok") & hist["headline"].notna()]
    return {r.period: json.loads(r.headline) for r in ok.itertuples()}  # oldest first: the latest report of a quarter wins


def report_salt(audit_dir: Path, out: Path | None, ledger=None) -> bytes:
    """The salt that keys patients in a report of ``audit_dir``: the salt of the engagement the audit folder belongs to
    (beside the report folder that holds it, or beside the check folder), else the one of the ledger or the output
    folder's engagement, else a salt that lives only in this process (nothing written to the system's temp folder)."""
    from ccmlib.report.privacy import salt_path
    audit_dir = Path(audit_dir).resolve()
    own = audit_dir.parent.parent if audit_dir.name == "audit" else audit_dir.parent
    if salt_path(own).exists():
        return load_salt(own)
    if ledger:
        return load_salt(Path(ledger).resolve().parent)
    return load_salt(engagement_root(out)) if out is not None else ephemeral_salt()


def check_crosswalk(audit_dir: Path, salt: bytes, practice_name: str) -> None:
    """A report of a run folder must key patients as the folder's crosswalk.csv does (the crosswalk is how an auditor
    pulls a chart): refuse a salt or practice name that would key them otherwise."""
    cw = Path(audit_dir) / "crosswalk.csv"
    if not cw.is_file():
        return
    t = pd.read_csv(cw, dtype=str, keep_default_na=False, nrows=50)
    if len(t) and (patient_keys(t["patient_id"], salt, practice_name).to_numpy() != t["patient_key"].to_numpy()).any():
        raise InputError(f"{cw}: its patient keys were made for another practice name or engagement (salt) than this report's "
                         f"({practice_name!r}); render beside the original report folder, with the practice name it was "
                         f"audited under")


def ingest_rejections(practice) -> pd.DataFrame | None:
    """The source records `ccm-audit ingest` could not map (with the record's value), kept in the run folder for the
    report's appendix A; None for a folder of tables."""
    dq = getattr(practice, "ingest_quality", None)
    if dq is None or dq.empty:
        return None
    return dq[dq["action"] == "rejected"].reset_index(drop=True)


def audit_for_report(data_dir, period: str, audit_dir: Path, sample_size=None, seed=None, strata=None, practice_name=None,
                     ledger=None, overrides=None, fees=None, final=False, command=None, salt: bytes = b"", profile=None,
                     encounters_from=None, progress: bool = False) -> AuditResult:
    """The audit behind a report, written to ``audit_dir`` as a run folder that holds everything the report shows: the
    run's tables and run.json with, under ``report``, the practice name and the earlier quarters' headlines for the
    trend (from the ledger, else audited with the same decisions), plus the crosswalk and the ingest's rejected records.
    A report renders from that folder alone (:meth:`QuarterlyReview.open`)."""
    if fees and not Path(fees).is_file():
        raise InputError(f"{fees}: fee schedule file not found")
    if overrides and not Path(overrides).is_file():
        raise InputError(f"{overrides}: overrides file not found")
    data = Path(data_dir) if data_dir else paths.demo_dir()
    p = parse_period(period)
    practice = load_practice(data, progress=progress)
    name = practice_name or data.name
    earlier = Background(tables.earlier_quarters, practice, p, recorded=recorded_quarters(ledger, name), overrides=overrides,
                         fees=fees, profile=profile, encounters_from=encounters_from)  # on the second core while this quarter is audited
    try:
        res = audit(practice, period=period, overrides=overrides, fees=fees, profile=profile, encounters_from=encounters_from,
                    progress=progress)  # the rules' bar on a terminal (a large practice takes minutes before the notebook starts)
        res.run["command"] = command or "notebooks/quarterly_review.ipynb (run in Jupyter)"  # what was run, not the kernel's launch line
        from ccmlib.engine.pipeline import empty_period_message
        empty = empty_period_message(res.run)
        if empty:
            raise InputError(empty)
        if sample_size:
            attach_sample(res, int(sample_size), None if seed is None else str(seed), strata=strata)
            check_final(res.run, final)
    except BaseException:
        earlier.cancel()  # refused (an empty period, --final with units undecided) or failed: the trend is not needed
        raise
    res.run["report"] = {"practice_name": name,
                         "earlier_quarters": [{"period": q, "source": src, "headline": h} for q, (h, src) in earlier.result().items()]}
    ids = pd.concat([res.patient_months["patient_id"], res.claim_lines["patient_id"],
                     res.findings["patient_id"]]).dropna().astype(str).drop_duplicates().sort_values()
    extra = {"crosswalk": pd.DataFrame({"patient_key": patient_keys(ids, salt, name).to_numpy(), "patient_id": ids.to_numpy()})}
    rej = ingest_rejections(practice)
    if rej is not None:
        extra["ingest_rejected"] = rej
    write_outputs(res, audit_dir, extra=extra)
    if overrides and not (Path(audit_dir) / "overrides.csv").exists():
        shutil.copyfile(overrides, Path(audit_dir) / "overrides.csv")  # the decisions travel with the report
    return res


@dataclass
class QuarterlyReview:
    data_dir: Path
    period: str
    practice_name: str
    output_dir: Path
    result: AuditResult
    show_identifiers: bool = False
    ledger: Path | None = None
    salt: bytes = field(default=b"", repr=False)
    overrides: str | None = None  # the auditor decision log applied (the trend applies it too)
    practice: object = field(default=None, repr=False)  # the loaded tables, reused for the trend
    prepared_by: str | None = None
    prepared_for: str | None = None
    final: bool = False
    repayment_path: str | None = None  # identified, self-disclosure, contractor or cia (None: by whether the run was sampled)

    @classmethod
    def open(cls, audit_dir=None, practice_name=None, output_dir=None, show_identifiers=False, ledger=None, prepared_by=None,
             prepared_for=None, final=False, repayment_path=None, command=None, salt: bytes | None = None) -> "QuarterlyReview":
        """The review of an audit run folder (a report's ``audit/`` or a ``check`` folder), read as it was written: nothing
        is re-audited, so a signed run renders with the same figures and tables. ``audit_dir`` None audits the bundled
        demo practice into a temporary folder first (a run in Jupyter). The parameters were checked before papermill."""
        if audit_dir is None:
            return cls.run(practice_name=practice_name, output_dir=output_dir, show_identifiers=show_identifiers, ledger=ledger,
                           prepared_by=prepared_by, prepared_for=prepared_for, final=final, repayment_path=repayment_path,
                           command=command)
        from ccmlib.engine.runfolder import read_outputs
        audit_dir = Path(audit_dir)
        res = read_outputs(audit_dir)
        rep = res.run.get("report") or {}
        name = practice_name or rep.get("practice_name") or Path(res.run.get("data_folder", audit_dir)).name
        repayment.check_path(repayment_path)
        check_final(res.run, final)
        tmp = None
        if output_dir:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="ccm-report-")
            out = Path(tmp.name)
        if salt is None:
            salt = report_salt(audit_dir, out if output_dir else None, ledger)
        check_crosswalk(audit_dir, salt, name)
        review = cls(Path(res.run.get("data_folder", "")), res.run["period"]["label"], name, out, res, show_identifiers,
                     Path(ledger) if ledger else None, salt)
        review._tmp = tmp
        review.audit_dir = audit_dir
        review.overrides = str(audit_dir / "overrides.csv") if (audit_dir / "overrides.csv").is_file() else None
        review.prepared_by, review.prepared_for, review.final = prepared_by, prepared_for, bool(final)
        review.repayment_path = repayment_path
        review.render_command = command
        recorded = {e["period"]: (e["headline"], e["source"]) for e in rep.get("earlier_quarters", [])}
        if "earlier_quarters" not in rep:  # a check folder: earlier quarters only as the ledger recorded them
            first = parse_period(review.period).first
            labels = [quarter_label(first - 3 * b) for b in range(3, 0, -1)]
            led = recorded_quarters(ledger, name)
            recorded = {q: (led[q], "ledger") for q in labels if q in led}
        review._earlier = recorded
        return review

    @classmethod
    def run(cls, data_dir=None, period="2026Q3", sample_size=None, seed=None, strata=None, practice_name=None,
            output_dir=None, show_identifiers=False, ledger=None, overrides=None, prepared_by=None, prepared_for=None,
            final=False, fees=None, repayment_path=None, command=None) -> "QuarterlyReview":
        """Audit ``data_dir`` into ``output_dir/audit`` (a temporary folder without one) and open the review of that run
        folder: what `ccm-audit report` does before it renders."""
        tmp = None
        if output_dir:
            out = Path(output_dir)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="ccm-report-")
            out = Path(tmp.name)
        salt = load_salt(Path(ledger).parent) if ledger else load_salt(engagement_root(out)) if output_dir else ephemeral_salt()
        audit_for_report(data_dir, period, out / "audit", sample_size=sample_size, seed=seed, strata=strata,
                         practice_name=practice_name, ledger=ledger, overrides=overrides, fees=fees, final=final,
                         command=command, salt=salt)
        review = cls.open(out / "audit", practice_name=practice_name, output_dir=str(out), show_identifiers=show_identifiers,
                          ledger=ledger, prepared_by=prepared_by, prepared_for=prepared_for, final=final,
                          repayment_path=repayment_path, command=command, salt=salt)
        review._tmp_audit = tmp
        return review

    # ------------------------------------------------------------------ identifiers
    def shown(self, df: pd.DataFrame) -> pd.DataFrame:
        """A table as the report may show it: pseudonymous patient keys unless identifiers were asked for."""
        if self.show_identifiers:
            return df
        return pseudonymize(df, self.salt, self.practice_name)

    # ------------------------------------------------------------------ figures (all read from the run's summary)
    @property
    def headline(self) -> dict:
        return tables.headline(self.result)

    @property
    def summary(self) -> dict:
        return self.result.run["summary"]

    def provenance(self) -> dict:
        run = self.result.run
        return {"practice": self.practice_name, "period": run["period"]["label"],
                "rule_catalog_version": run.get("rule_catalog_version", RULE_CATALOG_VERSION),  # the run's, when re-rendered
                "seed": run.get("seed"), "inputs": [{"file": i["file"], "sha256": i["sha256"]} for i in run["inputs"]],
                "packages": run["packages"], "generated": run["finished"], "prepared_by": self.prepared_by or "",
                "prepared_for": self.prepared_for or self.practice_name, "status": "FINAL" if self.final else "DRAFT",
                "period_from": run["period"]["from"], "period_to": run["period"]["to"],
                "sources": [{"file": x["file"], "sha256": x["sha256"]} for x in (run.get("ingest") or {}).get("sources", [])],
                "mapping": run.get("mapping"), "rendered_with": getattr(self, "render_command", None) or run.get("command", ""),
                "profile": (run.get("profile") or {}).get("name", profiles.DEFAULT)}

    def source_files(self) -> pd.DataFrame:
        """What the audited tables were built from: the X12 and FHIR files `ccm-audit ingest` read, with their hashes and
        records (read = mapped + rejected) and paid dollars; mapping.yml with its hash. Empty for a folder of tables."""
        run = self.result.run
        rows = [{"file": Path(x["file"]).name, "format": x.get("format", ""), "records_read": x.get("records_read"),
                 "records_mapped": x.get("records_mapped"), "records_rejected": x.get("records_rejected"),
                 "paid_read": x.get("paid_read"), "paid_rejected": x.get("paid_rejected"), "sha256": x.get("sha256")}
                for x in (run.get("ingest") or {}).get("sources", [])]
        if run.get("mapping"):
            rows.append({"file": Path(run["mapping"]["file"]).name, "format": "column mapping", "sha256": run["mapping"]["sha256"]})
        return pd.DataFrame(rows, columns=["file", "format", "records_read", "records_mapped", "records_rejected", "paid_read",
                                           "paid_rejected", "sha256"])

    def ingest_rejected(self) -> pd.DataFrame:
        """The source records `ccm-audit ingest` could not map, with the paid dollars each holds (the record itself, which
        may name the patient, only with identifiers)."""
        from ccmlib.engine.runfolder import read_table
        f = getattr(self, "audit_dir", None)
        if f is None or not (Path(f) / "ingest_rejected.csv").is_file():
            return pd.DataFrame(columns=["file", "line", "column", "table", "problem", "paid_amount"])
        rej = read_table(Path(f) / "ingest_rejected.csv")
        cols = ["file", "line", "column", "table", "problem", "paid_amount"] + (["value"] if self.show_identifiers else [])
        return rej[cols].sort_values(["paid_amount", "file", "line"], ascending=[False, True, True], kind="mergesort").reset_index(drop=True)

    def ingest_note(self) -> str:
        ing = self.result.run.get("ingest")
        if not ing:
            return ""
        rej = self.ingest_rejected()["paid_amount"].astype(float)
        held = (f"holding {money(rej[rej > 0].sum())} paid" + (f" and {money(rej[rej < 0].sum())} in reversals" if (rej < 0).any() else "")
                if len(rej) else "")
        return _escape_dollars(f"The data folder was built by `ccm-audit ingest` from the source files in appendix B; "
                               f"{plural(ing['records_rejected'], 'source record')} could not be mapped" + (f", {held}" if held else "")
                               + ". Each is listed here with the reason (and in the data-quality sheet of the workpapers).")

    def earlier(self) -> dict:
        """Up to three earlier quarters' headlines (label -> (headline, source)) as the run folder recorded them when the
        audit ran: from the ledger's last successful report of each, else audited with the same decisions."""
        return self._earlier

    def previous(self) -> dict | None:
        """The headline of the quarter just before this one, when the data has it."""
        return self.earlier().get(quarter_label(parse_period(self.period).first - 3), (None, None))[0]

    def trend(self) -> pd.DataFrame:
        """This quarter from this run; earlier quarters from the ledger, else audited with the same decisions."""
        return tables.trend(self.headline, self.earlier())

    # ------------------------------------------------------------------ executive summary
    def executive_summary(self) -> str:
        h, r = self.headline, self.result.run
        npis = len(self.summary.get("by_practitioner", []))
        sampled = (f" Every line was screened against the rules; a random sample of {h['sample_size']} lines was drawn for "
                   f"chart review and extrapolation." if h["sampled"] else
                   " Every line was screened against the rules from the practice's exports; no sample was drawn for chart review.")
        billed = self.summary.get("billed_patient_months", h["patient_months"])
        lines = [f"**What was reviewed.** {h['claim_lines_reviewed']:,} Chronic Care Management claim lines (CPT 99490 and related "
                 f"codes) paid {money(h['paid_amount'])}, billed by {plural(npis, 'practitioner')} for "
                 f"{plural(billed, 'patient-month')} from {r['period']['from']} to {r['period']['to']}"
                 + (f" (and {plural(h['patient_months'] - billed, 'more patient-month')} with care-management time but no claim)"
                    if h["patient_months"] > billed else "")
                 + f", checked against {len(r['rules'])} Medicare requirements." + sampled,
                 "",
                 f"**What we found.** {h['claim_lines_in_error']:,} of {h['claim_lines_reviewed']:,} claim lines "
                 f"(**{pct(h['error_rate_count'])}**) were not fully supported by the documentation, an overpayment of "
                 f"**{money(h['overpayment'])}** by Medicare (**{pct(h['error_rate_dollars'])}** of the dollars paid), and "
                 f"**{money(h.get('cost_sharing', 0.0))}** the patients paid as cost sharing for the same units, to be refunded to "
                 f"them. Documented time also supported {money(h['missed_revenue'])} that was not billed."]
        o = r.get("overrides")
        if o:
            lines.append(f"These figures include {plural(o['applied'], 'auditor decision')} after chart review, "
                         f"{o['overturned'] or 'none'} of them overturning a finding" + (f" and {o['added']} adding a defect the chart shows" if o.get("added") else "") + ".")
        rv = r.get("review")
        if rv:
            lines += ["", (f"**Chart review of the sample: not finished.** {rv['undecided']} of {rv['sampled_units']} sampled units are "
                           f"still undecided; every figure from the sample is provisional and this report is a draft."
                           if rv["undecided"] else
                           f"**Chart review of the sample: complete.** All {rv['sampled_units']} sampled units were reviewed against "
                           f"the chart; the sample's results below follow those decisions.")]
        lines += ["", self.repayment_markdown()]
        return _escape_dollars("\n".join(lines))

    @property
    def path(self) -> str:
        return self.repayment_path or repayment.default_path(self.summary)

    def repayment_markdown(self) -> str:
        """The one repayment sentence (the chosen path's figure, where it applies and its source) and what makes it unfit."""
        text = "**" + md_text(repayment.sentence(self.summary, self.path)) + "**"
        warn = repayment.warnings(self.summary, self.path, open_review=False)  # the open review has its own paragraph
        if warn:
            text += "\n\n" + "\n".join(f"- **Warning:** {md_text(w)}" for w in warn)
        text += ("\n\n*Section 8 gives the figure of every repayment path" + (
            " (this report names none: the path shown is the default for its kind of review)" if self.repayment_path is None else "")
            + ". The figures are guidance on the amounts, not legal advice: agree the route with compliance counsel.*")
        return text

    def sample_table(self) -> pd.DataFrame:
        """The sample's size, units in error, sample overpayment, precision and limits (page 1)."""
        return repayment.sample_table(self.summary)

    def repayment_paths(self) -> pd.DataFrame:
        """Every repayment path with its figure, when it applies, its source and whether this review is fit for it."""
        return repayment.paths_table(self.summary)

    def key_figures(self) -> pd.DataFrame:
        """This quarter against the previous one: the headline measures in words."""
        h, prev = self.headline, self.previous()
        rows = [("Claim lines reviewed", "claim_lines_reviewed", "count"), ("Claim lines not fully supported", "claim_lines_in_error", "count"),
                ("Error rate by count", "error_rate_count", "pct"), ("Paid", "paid_amount", "money"), ("Overpayment", "overpayment", "money"),
                ("Error rate by dollars", "error_rate_dollars", "pct"), ("Patients' cost sharing (refund to patients)", "cost_sharing", "money"),
                ("Missed revenue", "missed_revenue", "money")]
        fmt = {"count": lambda v: f"{int(v):,}", "pct": pct, "money": money}
        out = []
        for name, key, kind in rows:
            now = h.get(key)
            before = prev.get(key) if prev else None
            change = "" if before is None or now is None else (
                f"{(now - before) * 100:+.1f} points".replace("-", "\u2011") if kind == "pct" else
                f"{'+' if now >= before else chr(0x2011)}{fmt[kind](abs(now - before))}")
            out.append({"measure": name, "this_quarter": fmt[kind](now), "previous_quarter": "" if before is None else fmt[kind](before),
                        "change": change})
        return pd.DataFrame(out)

    def top_criteria(self, n: int = 4) -> pd.DataFrame:
        """The requirements that failed most (by dollars), in words, with the previous quarter's dollars."""
        ch = tables.rule_change(self.headline, self.previous(), self.result.run.get("profile"))
        ch = ch[ch["amount"] > 0].head(n)
        change = ch["change"].map(lambda v: "" if pd.isna(v) else ("+\u2060" if v >= 0 else "\u2011") + money(abs(v)))  # no break after the sign
        return ch.assign(title=ch["title"] + " (" + ch["id"] + ")", change=change)[
            ["title", "patient_months", "amount", "previous_amount", "change"]]

    def top_actions(self, n: int = 3) -> str:
        """The ``n`` most valuable corrective actions (largest dollars first), as a numbered list."""
        a = self.corrective_actions()
        a = a[a["severity"] == "error"].head(n)
        if a.empty:
            return "No corrective action is needed for errors this quarter."
        items = [f"{i}. **{md_text(x.action)}** ({md_text(x.title)}: {x.patient_months} patient-months, {money(x.amount)} at risk)"
                 for i, x in enumerate(a.itertuples(), 1)]
        return _escape_dollars("\n".join(items))

    # ------------------------------------------------------------------ scope and method
    def scope_markdown(self) -> str:
        r, h = self.result.run, self.headline
        lines = [f"**Practice:** {md_text(self.practice_name)}  ", f"**Period:** {r['period']['label']} ({r['period']['from']} to {r['period']['to']})  ",
                 f"**Universe:** {h['patient_months']} billed or documented patient-months, {h['claim_lines_reviewed']} CCM-family claim lines "
                 f"(99490, 99439, 99487, 99489, 99491, 99437, G0506, G0511) paid {money(h['paid_amount'])}.  ",
                 f"**Criteria:** rule catalog version {r.get('rule_catalog_version', RULE_CATALOG_VERSION)}, {len(r['rules'])} rules run (section 2 lists each with its "
                 f"source).  ", f"**Profile:** {md_text(profiles.sentence(r.get('profile')).removeprefix('Profile '))}  "]
        if self.result.sample is not None:
            s = r["sample"]
            strata = f", stratified by {md_text(s['strata'])} (seeds {md_text(s['seed_sequence'])})" if s["strata"] else ""
            wh = "; ".join(f"{md_text(b['stratum'])}: {', '.join(map(str, b['wh_seeds']))}" for b in s["by_stratum"])
            lines.append(f"**Sample:** {s['quantity']} of {s['frame_size']} {s['unit'].replace('_', ' ')} drawn with RAT-STATS-compatible "
                         f"random numbers, seed {md_text(s['seed'])}{strata}; frame numbered 1..N by {', '.join(s['frame_order'])} "
                         f"(AS 183 seeds {wh}). The frame is in the workpapers so anyone can re-draw it.  ")
        else:
            lines.append("**Sample:** none; the full population was screened.  ")
        fs, summ = r["fee_schedule"], r["summary"]
        priced = ", ".join(f"{n:,} by {md_text(k.replace('_', ' '))}" for k, n in fs.get("lines_by_price_source", {}).items()) or "none"
        settings = ", ".join(f"{n} {md_text(k)}" for k, n in fs.get("fee_settings", {}).items())
        cfs = ", ".join(f"${c:.4f}" for c in fs.get("conversion_factors", []))
        lines.append(f"**Fee schedule:** {md_text(fs['source'])}; claim lines priced: {priced}"
                     + (f" (fee-schedule lines: {settings} setting; conversion factor {cfs})" if settings else "")
                     + (f"; qualifying APM rate for NPI {md_text(', '.join(fs['qualifying_apm_npis']))}" if fs.get("qualifying_apm_npis") else "")
                     + ".  ")
        if "fee_schedule" in fs.get("lines_by_price_source", {}) or summ.get("cost_sharing"):
            lines.append(f"**Medicare's share and the patients' share:** a line without a paid amount is priced at the fee "
                         f"schedule's allowed amount, of which Medicare pays {fs.get('medicare_share', 0.8):.0%} less the payment "
                         f"sequestration in force on the service date ({', '.join(f'{r:.0%}' for r in fs.get('sequestration_rates', [])) or 'none'}); "
                         f"the patients' cost sharing is the allowed amount less the paid amount where the claim gives both, else "
                         f"20% of the fee (an estimate: an unmet deductible or a secondary payer changes it).  ")
        if summ.get("unpriced_lines"):
            lines.append(f"**Unpriced lines:** {plural(summ['unpriced_lines'], 'line')} {'has' if summ['unpriced_lines'] == 1 else 'have'} neither a paid amount nor a fee-schedule amount; "
                         f"{summ.get('unpriced_lines_not_supported', 0)} of them are not supported and their overpayment is left blank "
                         f"(not counted as $0); see the data-quality list.  ")
        if summ.get("iv01_not_assessed_patient_months"):
            vh = r.get("visit_history") or {}
            start = (f" begins on {vh['start']} ({'declared' if vh.get('source') == 'declared' else 'the earliest visit in the data'})"
                     if vh.get("start") else " does not reach back far enough")
            lines.append(f"**Initiating visit not assessed:** {plural(summ['iv01_not_assessed_patient_months'], 'patient-month')}: "
                         f"the visit history (encounters and visit claims){start}, after the year before CCM began, and shows "
                         f"no qualifying visit.  ")
        o = r.get("overrides")
        if o:
            lines.append(f"**Auditor decisions:** {o['applied']} applied from the decision log, {o['overturned']} overturning a finding "
                         f"(trail in the workpapers, sheet 'auditor decisions').  ")
        lines.append(f"**Condition map:** {md_text(r['condition_map']['source'])} ({md_text(r['condition_map']['icd10'])}).  ")
        lines.append("**Patients** appear under pseudonymous keys (PT-...); the key-to-patient crosswalk is kept with the audit data "
                     "(audit/crosswalk.csv), never in this report." if not self.show_identifiers else
                     "**Patients** appear under their identifiers, as the run asked: handle this report as protected health information.")
        return _escape_dollars("\n".join(lines))

    # ------------------------------------------------------------------ results
    def rules(self) -> pd.DataFrame:
        return tables.by_rule(self.result)

    def criterion_tables(self) -> dict[str, pd.DataFrame]:
        """The rules of each criterion in words; the opportunities' dollars are missed revenue, titled so (never 'at risk')."""
        r = self.rules()
        cols = ["id", "title", "severity", "findings", "patient_months", "amount", "explanation", "citation"]
        out = {c: r[r["criterion"] == c][cols].reset_index(drop=True) for c in tables.CRITERIA_ORDER
               if c != "Chart review" or (r["criterion"] == c).any()}  # a section of its own only when the auditor added defects
        if "Opportunities" in out:
            out["Opportunities"] = out["Opportunities"].rename(columns={"amount": "missed_amount"})
        return out

    def overlap_note(self) -> str:
        """The note every per-rule dollar table carries: the amounts overlap, the total comes from the claim lines."""
        return _escape_dollars(f"*Per-rule dollars overlap: one claim line can fail several rules, so they add up to "
                               f"{money(self.summary['per_rule_amounts_total'])} while the total overpayment, from the "
                               f"claim lines, is {money(self.headline['overpayment'])}.*")

    def practitioners(self) -> pd.DataFrame:
        return tables.practitioners(self.result)

    def staff_error_rate(self) -> pd.DataFrame:
        return tables.staff_error_rate(self.result)

    STAFF_SHOWN = 25

    def staff_shown(self) -> pd.DataFrame:
        """The staff table of the report: the ``STAFF_SHOWN`` with the highest error rates (all in the workpapers)."""
        return self.staff_error_rate().head(self.STAFF_SHOWN)

    def staff_note(self) -> str:
        n = len(self.staff_error_rate())
        return "" if n <= self.STAFF_SHOWN else (f"The {self.STAFF_SHOWN} staff members with the highest error rates of {n}; all are "
                                                 f"in the workpapers (sheet 'by staff').")

    def month_error_rate(self) -> pd.DataFrame:
        return tables.month_error_rate(self.result)

    LINES_SHOWN = 500

    def lines_not_supported(self, limit: int | None = LINES_SHOWN, total: bool = False) -> pd.DataFrame:
        """Claim lines not fully supported with claim id and line, sampled lines marked and the reasons in words, the
        largest overpayment first (``limit`` in the report, all in the workpapers); ``total`` adds a row with the totals
        of every unsupported line (not only those shown)."""
        t = self.shown(tables.lines_not_supported(self.result))
        if self.result.sample is None:
            t = t.drop(columns="sampled")  # no sample, no column of blanks
        shown = t if limit is None else t.head(limit)
        if total and len(t):
            row = {c: None for c in t.columns} | {"claim_id": f"Total, all {len(t):,} lines", "paid_amount": round(float(t["paid_amount"].sum()), 2),
                                                  "overpayment": round(float(t["overpayment"].fillna(0).sum()), 2)}
            shown = pd.concat([shown, pd.DataFrame([row])], ignore_index=True)
        return shown

    def denied_lines(self) -> pd.DataFrame:
        """Claim lines the payer denied (paid 0, BILL-08), listed apart: not an overpayment, but each is a claim the
        practice billed that CMS's edits (duplicates, conflicts) or the payer refused, with the rules it also fails."""
        cl = self.result.claim_lines
        d = cl[cl["determination"] == "denied"]
        d = d.sort_values(["service_date", "claim_id", "line"], kind="mergesort")
        out = d[["claim_id", "line", "patient_id", "service_date", "billing_npi", "cpt_code", "units_billed", "rule_ids"]]
        out = out.assign(rule_ids=out["rule_ids"].fillna("").str.replace(";", ", ", regex=False))
        return self.shown(out.reset_index(drop=True))

    def denied_note(self) -> str:
        n = len(self.denied_lines())
        if not n:
            return "No claim line of the period was denied by the payer."
        return _escape_dollars(f"{plural(n, 'claim line')} {'was' if n == 1 else 'were'} denied by the payer (paid $0): not an overpayment, "
                f"so {'it is' if n == 1 else 'they are'} not in the list above, but each is a claim the practice billed that "
                f"the payer refused (CMS's claim edits deny many duplicate and conflicting lines before payment). The rules "
                f"column names what else each line fails.")

    def lines_note(self) -> str:
        n = int(self.summary["claim_lines_not_supported"])
        shown = min(n, self.LINES_SHOWN)
        sampled = (" Lines marked *yes* under Sampled are in the chart-review sample." if self.result.sample is not None else "") + (
            " The rules are named by id (section 2 gives each in words; the workpapers give the reasons in words on every line).")
        return _escape_dollars(
            f"{plural(n, 'claim line')} {'is' if n == 1 else 'are'} not fully supported" + (f"; the {shown} with the largest overpayment are listed and the other "
            f"{n - shown:,} are in the workpapers (sheet 'lines not supported') and audit/claim_lines.csv; the total row covers "
            f"all {n:,}" if shown < n else ", all listed, with their total in the last row") + "." + sampled)

    def sample_review(self) -> pd.DataFrame:
        """Each sampled unit (spares left out) with its review state: undecided or decided, by whom, when, what."""
        smp = self.result.sample
        if smp is None:
            return pd.DataFrame()
        s = smp[~smp["spare"]]
        cols = [c for c in ("unit", "claim_id", "line", "patient_id", "cpt_code", "examined", "difference",
                            "review_state", "decided_by", "decided_at", "decisions") if c in s.columns]
        out = s[cols].sort_values("unit", kind="mergesort").reset_index(drop=True)
        out = out.assign(decided_at=out["decided_at"].astype(str).str.slice(0, 16).str.replace("T", " "))
        return self.shown(out.rename(columns={"examined": "paid_amount", "difference": "overpayment"}))

    def decisions(self) -> pd.DataFrame:
        """Every auditor decision in force: who, when, what, on which finding or unit, why and the evidence (appendix D)."""
        t = self.result.review_trail
        if t is None or t.empty:
            return pd.DataFrame(columns=["decided_at", "reviewer", "decision", "rule_id", "patient_id", "service_month", "claim_id",
                                         "line", "units_supported", "reason", "evidence", "status"])
        t = t.assign(reason=t["reason"].where(t["description"].fillna("") == "", t["description"].fillna("") + ": " + t["reason"]))
        t = t.sort_values(["decided_at", "patient_id", "service_month"], kind="mergesort")
        t = t.assign(decided_at=t["decided_at"].astype(str).str.slice(0, 16).str.replace("T", " "),
                     reason=t["reason"].where(t["status"] == "applied", t["reason"] + " [finding no longer raised]"))
        return self.shown(t[["decided_at", "reviewer", "decision", "rule_id", "patient_id", "service_month", "claim_id", "line",
                             "units_supported", "reason", "evidence"]].reset_index(drop=True))

    # ------------------------------------------------------------------ risk indicators
    def risk_table(self) -> pd.DataFrame:
        """OIG-style indicators in words, each with its value and whether it calls for a look."""
        ri = self.summary.get("risk_indicators", {})
        rows = []
        spikes = [e for e in ri.get("enrolments", []) if e["spike"]]
        first = self.result.run["period"]["from"][:7]
        rows.append({"indicator": "Months with an enrolment spike (new CCM consents at least twice the median month, 5 or more; "
                                  "months before this period are listed because patients enrolled then are billed in it)",
                     "value": ", ".join(f"{e['month']} ({e['new_patients']}{', before this period' if e['month'] < first else ''})"
                                        for e in spikes) or "none",
                     "look_closer": "yes" if spikes else "no"})
        nv = ri.get("no_prior_visit", {})
        rows.append({"indicator": "Billed patient-months with no visit by the billing practitioner in the 12 months before the "
                                  "service month (OIG's indicator; IV-01 asks only for an initiating visit in the year before CCM "
                                  "began, so a patient-month can show here without an IV-01 finding)",
                     "value": (f"{nv['patient_months']} of {nv['of_patient_months']} ({pct(nv['patient_months'] / nv['of_patient_months'])}), "
                               f"{nv['patients']} patients" if nv.get("assessable") and nv.get("of_patient_months") else
                               "not assessable (no encounters or visit claims supplied)"),
                     "look_closer": "yes" if nv.get("assessable") and nv.get("patient_months") else "no"})
        sp = ri.get("several_practitioners", {})
        rows.append({"indicator": "Patient-months billed by more than one practitioner",
                     "value": f"{sp.get('patient_months', 0)} of {sp.get('of_patient_months', 0)}",
                     "look_closer": "yes" if sp.get("patient_months") else "no"})
        for c in ri.get("minutes_clusters", []):
            rows.append({"indicator": f"Billed patient-months with {c['threshold']}-{c['threshold'] + c['band_minutes'] - 1} qualifying minutes "
                                      f"(just over {c['threshold']}) against {c['threshold'] + c['band_minutes']}-"
                                      f"{c['threshold'] + 2 * c['band_minutes'] - 1}",
                         "value": f"{c['just_over']} against {c['next_band']}", "look_closer": "yes" if c["spike"] else "no"})
        return pd.DataFrame(rows)

    def enrolments(self) -> pd.DataFrame:
        return pd.DataFrame(self.summary.get("risk_indicators", {}).get("enrolments", []), columns=["month", "new_patients", "spike"])

    def minutes_distribution(self) -> pd.DataFrame:
        return pd.DataFrame(self.summary.get("risk_indicators", {}).get("minutes_distribution", []), columns=["from", "to", "patient_months"])

    # ------------------------------------------------------------------ actions, overpayments, sign-off
    def corrective_actions(self) -> pd.DataFrame:
        return tables.corrective_actions(self.result)

    def overpayment_markdown(self) -> str:
        h = self.headline
        if h["sampled"]:
            which = (f"This review screened all {h['claim_lines_reviewed']:,} claim lines and read a random sample against the chart. "
                     f"The figure a practice repays depends on the path; the table gives each with its source, and says whether "
                     f"this review is fit for it. The path named for this report is **{md_text(self._path_name())}**.")
        else:
            which = (f"Every claim line of the period was screened and no sample was drawn, so the overpayment is the sum of the "
                     f"unsupported lines: {money(h['overpayment'])}, listed line by line in section 4 and the workpapers. No "
                     f"estimate is involved.")
        return _escape_dollars("\n".join([
            "Social Security Act s. 1128J(d) and 42 CFR 401.305 require a provider who has identified an overpayment to report "
            "and return it within 60 days of identification; as amended by the CY2025 physician fee schedule final rule, the "
            "regulation suspends that deadline while a timely, good-faith investigation of related overpayments goes on, for up "
            "to 180 days, and sets a look-back period of six years. When the overpayment counts as identified is a legal "
            "question for the practice and its counsel.",
            "",
            which,
            "",
            "Refunds go to the Medicare Administrative Contractor (its voluntary refund form, with the claim details from the "
            "workpapers); matters involving potential fraud go through OIG's Health Care Fraud Self-Disclosure Protocol. This "
            "section is guidance on the figures, not legal advice: agree the route with compliance counsel."]))

    def conclusion_markdown(self) -> str:
        """The reviewer's conclusion in one paragraph: how far the documentation supports the claims, what it costs, what
        the review's state allows the report to be used for, and what comes next. Every figure from the run's summary."""
        h, rv = self.headline, self.result.run.get("review")
        rate = h["error_rate_count"]
        level = ("supports nearly all of" if rate < 0.05 else "supports most of" if rate < 0.2 else "does not support a large share of")
        parts = [f"The practice's documentation {level} the Chronic Care Management it billed for {self.period}: "
                 f"{plural(h['claim_lines_in_error'], 'claim line')} of {h['claim_lines_reviewed']:,} ({pct(rate)}) "
                 f"{'is' if h['claim_lines_in_error'] == 1 else 'are'} not fully supported, an overpayment of "
                 f"{money(h['overpayment'])} by Medicare and {money(h.get('cost_sharing', 0.0))} of the patients' cost sharing."]
        top = self.top_criteria(1)
        if len(top):
            parts.append(f"The requirement that failed for the most dollars is \u201c{md_text(str(top.iloc[0]['title']))}\u201d; "
                         f"section 7 lists the corrective actions by the dollars each would have saved.")
        if rv and rv.get("undecided"):
            parts.append(f"The chart review of the sample is not finished ({rv['undecided']} of {rv['sampled_units']} units open), "
                         f"so this conclusion is provisional and the report cannot be final.")
        elif rv:
            parts.append("Every sampled unit was reviewed against the chart, so the sample's figures may be used for the "
                         "repayment path named in section 8.")
        else:
            parts.append("No sample was read against the charts: the figures are the screen of the exports, to be confirmed "
                         "line by line before any refund.")
        return _escape_dollars(" ".join(parts))

    def limitations_markdown(self) -> str:
        """What this review did not test: it screens the exports against the catalog; it is not a medical review."""
        run = self.result.run
        not_run = [s["rule_id"] for s in run.get("rules", []) if s.get("status") != "ran"]
        items = [
            "It screens the practice's exports (the files in appendix B, with their hashes) against the rule catalog; a record "
            "that was not exported, or was exported wrongly, is judged as the export shows it.",
            "It does not read medical records, except the sampled charts the auditor reviewed (appendix D); it cannot tell "
            "whether logged time reflects work actually done, or whether a consent or care plan on file says what its "
            "fields say.",
            "It does not judge medical necessity, or the complexity of medical decision making that complex CCM (99487) "
            "requires.",
            "It does not check Medicare enrolment: months in Medicare Advantage or without Part B, and patients who owe no "
            "cost sharing (qualified Medicare beneficiaries), need enrolment data the exports do not hold.",
            "It does not check hospital outpatient (facility) claims, which need institutional claim data.",
        ]
        if not_run:
            items.append(f"{plural(len(not_run), 'rule')} could not run on this data ({md_text(', '.join(not_run))}): the tables "
                         f"or columns they need were not supplied (section 2 shows each rule's status).")
        return "This review has limits a reader should know:\n\n" + "\n".join(f"- {i}" for i in items)

    def _path_name(self) -> str:
        return repayment.paths().set_index("path").loc[self.path, "name"] + ("" if self.repayment_path else " (by default)")

    # ------------------------------------------------------------------ data quality, appendix
    def data_quality_summary(self) -> pd.DataFrame:
        """Data-quality rows counted by table, column and action, with one example problem each."""
        dq = self.shown_quality()
        if dq.empty:
            return pd.DataFrame(columns=["table", "column", "handling", "rows", "example"])
        g = dq.groupby(["table", "column", "action"], dropna=False)
        return (g.size().rename("rows").to_frame().join(g["problem"].first().rename("example"))
                .reset_index().sort_values(["rows", "table"], ascending=[False, True]).reset_index(drop=True)
                .rename(columns={"action": "handling"}))  # what the loader did (rejected, note), not a corrective action

    def shown_quality(self) -> pd.DataFrame:
        """The data-quality table without identifying values (PHI columns' values and patient ids in notes masked)."""
        dq = self.result.data_quality
        if self.show_identifiers or dq.empty:
            return dq
        col = dq["column"].astype(str)
        sources = {Path(x["file"]).name for x in (self.result.run.get("ingest") or {}).get("sources", [])}
        phi = col.isin(["first_name", "last_name", "birth_date", "medicare_id"]) | dq["file"].astype(str).isin(sources)  # a source record may name the patient
        pid = col.str.split("+").str[0].eq("patient_id")  # patient_id, and composite keys that start with it
        value = dq["value"].astype("string").where(~phi, "(hidden)")
        value = value.where(~pid, patient_keys(dq["value"], self.salt, self.practice_name))
        return dq.assign(value=value, problem=dq["problem"].str.replace(r"for patient \S+", "for a patient", regex=True))

    def packages(self) -> pd.DataFrame:
        return pd.DataFrame([{"package": k, "version": v} for k, v in self.result.run["packages"].items()])

    APPENDIX_ROWS = 60

    def appendix(self, limit: int | None = APPENDIX_ROWS) -> pd.DataFrame:
        """Findings per patient-month, the largest dollar amounts first; the report shows ``limit`` rows, the
        workpapers all of them (a PDF of thousands of table rows helps nobody and takes minutes to print)."""
        a = tables.appendix(self.result)
        a = a.assign(_d=a["overpayment"] + a["missed_amount"]).sort_values(["_d", "patient_id", "service_month"],
                                                                         ascending=[False, True, True], kind="mergesort")
        a = self.shown(a.drop(columns="_d").reset_index(drop=True))
        a = a.assign(codes_supported=a["codes_supported"].fillna("").replace("", "none"))
        return a if limit is None else a.head(limit)

    def appendix_note(self) -> str:
        n = len(tables.appendix(self.result))
        shown = min(n, self.APPENDIX_ROWS)
        return (f"{n} patient-months have findings; the {shown} with the largest dollar amounts are listed here"
                + ("" if shown == n else "; all are in the workpapers, sheet 'appendix'") + ".")

    def ledger_history(self) -> pd.DataFrame:
        from ccmlib.report.ledger import runs
        if not self.ledger:
            return pd.DataFrame()
        return runs(self.ledger, self.practice_name).rename(columns={"id": "run_number"})  # "id" is a rule's column title

    def start_workpapers(self) -> None:
        """Write workpapers.xlsx on the second core while the notebook shows the report; :meth:`write_workpapers` waits
        for it."""
        self.earlier()  # the trend sheet needs it, and a forked writer must not fork the audit again
        self._workpapers_job = Background(self._write_workpapers)

    def write_workpapers(self) -> Path:
        job = getattr(self, "_workpapers_job", None)
        if job is not None:
            self._workpapers_job = None
            return job.result()
        return self._write_workpapers()

    def _write_workpapers(self) -> Path:
        res, h = self.result, self.headline
        flat = {k: v for k, v in h.items() if not isinstance(v, (dict, list))}
        summary = pd.DataFrame({"item": list(flat), "value": pd.Series(list(flat.values()), dtype=object)})  # numbers stay numbers
        sheets = {"summary": summary, "findings": self.shown(res.findings), "claim lines": self.shown(res.claim_lines),
                  "lines not supported": self.lines_not_supported(limit=None), "denied lines": self.denied_lines(),
                  "patient-months": self.shown(res.patient_months),
                  "by practitioner": self.practitioners(), "by staff": self.staff_error_rate(), "by month": self.month_error_rate(),
                  "trend": self.trend(), "corrective actions": self.corrective_actions(), "risk indicators": self.risk_table()}
        if res.sample is not None:
            sheets["sample"] = self.shown(res.sample)
            sheets["frame"] = self.shown(res.frame)
        else:
            sheets["sample"] = pd.DataFrame({"note": ["full population screened; no sample drawn"]})
        sheets["appendix"] = self.appendix(limit=None)
        sheets["data quality"] = self.shown_quality()
        if res.review_trail is not None:
            sheets["auditor decisions"] = self.shown(res.review_trail)
        rules = self.rules()
        sheets["rules"] = rules.assign(criterion=rules["criterion"].astype(str))
        prov = self.provenance()
        sheets["provenance"] = pd.concat([
            pd.DataFrame({"item": ["practice", "period", "from", "to", "rule catalog version", "seed", "generated", "prepared by",
                                   "prepared for", "status", "command", "rendered with"],
                          "value": [prov["practice"], prov["period"], prov["period_from"], prov["period_to"],
                                    prov["rule_catalog_version"], "" if prov["seed"] is None else str(prov["seed"]), prov["generated"],
                                    prov["prepared_by"], prov["prepared_for"], prov["status"], res.run.get("command", ""),
                                    prov["rendered_with"]]}),
            pd.DataFrame({"item": ["profile"] + ["profile file " + f["file"] for f in (res.run.get("profile") or {}).get("files", [])],
                          "value": [profiles.sentence(res.run.get("profile"))] + [f["sha256"] for f in (res.run.get("profile") or {}).get("files", [])]}),
            pd.DataFrame({"item": ["input " + i["file"] for i in res.run["inputs"]], "value": [i["sha256"] for i in res.run["inputs"]]}),
            pd.DataFrame({"item": ["source " + Path(i["file"]).name for i in prov["sources"]]
                          + (["mapping " + Path(prov["mapping"]["file"]).name] if prov.get("mapping") else []),
                          "value": [i["sha256"] for i in prov["sources"]] + ([prov["mapping"]["sha256"]] if prov.get("mapping") else [])}),
            pd.DataFrame({"item": ["package " + k for k in res.run["packages"]], "value": list(res.run["packages"].values())}),
        ], ignore_index=True)
        return write_workpapers(self.output_dir / "workpapers.xlsx", sheets)
