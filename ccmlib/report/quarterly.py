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
from ccmlib.engine.pipeline import AuditResult, attach_sample, audit, write_outputs
from ccmlib.errors import InputError
from ccmlib.intake.load import load_practice
from ccmlib.engine.periods import parse_period
from ccmlib.engine.rules import RULE_CATALOG_VERSION
from ccmlib.report import tables
from ccmlib.report.excel import write_workpapers
from ccmlib.report.privacy import ephemeral_salt, load_salt, patient_keys, pseudonymize

PARAMETERS = {"data_dir": (str, type(None)), "period": (str,), "sample_size": (int, type(None)), "seed": (str, int, float, type(None)),
              "strata": (str, type(None)), "practice_name": (str, type(None)), "output_dir": (str, type(None)),
              "show_identifiers": (bool,), "ledger": (str, type(None)), "overrides": (str, type(None))}


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
    text = html.escape(str(value), quote=True)
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~>])", r"\\\1", text).replace("\n", " ")


def money(v: float) -> str:
    return f"${v:,.2f}"


def pct(v: float) -> str:
    return f"{v * 100:.1f} %"


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

    @classmethod
    def run(cls, data_dir=None, period="2026Q3", sample_size=None, seed=None, strata=None, practice_name=None,
            output_dir=None, show_identifiers=False, ledger=None, overrides=None) -> "QuarterlyReview":
        check_parameters(dict(data_dir=data_dir, period=period, sample_size=sample_size, seed=seed, strata=strata,
                              practice_name=practice_name, output_dir=output_dir, show_identifiers=show_identifiers, ledger=ledger,
                              overrides=overrides))
        data = Path(data_dir) if data_dir else paths.demo_dir()
        tmp = None
        if output_dir:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
        else:  # an interactive run: a private temporary folder, removed when the review object goes (or the kernel ends)
            tmp = tempfile.TemporaryDirectory(prefix="ccm-report-")
            out = Path(tmp.name)
        parse_period(period)
        if overrides and not Path(overrides).is_file():
            raise InputError(f"{overrides}: overrides file not found")
        practice = load_practice(data)
        res = audit(practice, period=period, overrides=overrides)
        from ccmlib.engine.pipeline import empty_period_message
        empty = empty_period_message(res.run)
        if empty:
            raise InputError(empty)
        if sample_size:
            attach_sample(res, int(sample_size), None if seed is None else str(seed), strata=strata)
        name = practice_name or data.name
        if ledger:
            salt = load_salt(Path(ledger).parent)
        elif output_dir:
            salt = load_salt(out.parent)
        else:
            salt = ephemeral_salt()  # never written into the system temp folder
        review = cls(data, period, name, out, res, show_identifiers, Path(ledger) if ledger else None, salt, practice)
        review._tmp = tmp
        review.overrides = overrides
        write_outputs(res, out / "audit")
        if overrides and not (out / "audit" / "overrides.csv").exists():
            shutil.copyfile(overrides, out / "audit" / "overrides.csv")  # the decisions travel with the report
        return review

    # ------------------------------------------------------------------ identifiers
    def shown(self, df: pd.DataFrame) -> pd.DataFrame:
        """A table as the report may show it: pseudonymous patient keys unless identifiers were asked for."""
        if self.show_identifiers:
            return df
        return pseudonymize(df, self.salt, self.practice_name)

    # ------------------------------------------------------------------ sections
    @property
    def headline(self) -> dict:
        return tables.headline(self.result)

    def provenance(self) -> dict:
        run = self.result.run
        return {"practice": self.practice_name, "period": run["period"]["label"], "rule_catalog_version": RULE_CATALOG_VERSION,
                "seed": run.get("seed"), "inputs": [{"file": i["file"], "sha256": i["sha256"]} for i in run["inputs"]],
                "packages": run["packages"], "generated": run["finished"]}

    def scope_markdown(self) -> str:
        r, h = self.result.run, self.headline
        lines = [f"**Practice:** {md_text(self.practice_name)}  ", f"**Period:** {r['period']['label']} ({r['period']['from']} to {r['period']['to']})  ",
                 f"**Universe:** {h['patient_months']} billed or documented patient-months, {h['claim_lines_reviewed']} CCM-family claim lines "
                 f"(99490, 99439, 99487, 99489, 99491, 99437, G0506, G0511) paid {money(h['paid_amount'])}.  ",
                 f"**Rule catalog:** version {RULE_CATALOG_VERSION}, {len(r['rules'])} rules run.  "]
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
        priced = ", ".join(f"{n} by {md_text(k.replace('_', ' '))}" for k, n in fs.get("lines_by_price_source", {}).items()) or "none"
        settings = ", ".join(f"{n} {md_text(k)}" for k, n in fs.get("fee_settings", {}).items())
        cfs = ", ".join(f"${c:.4f}" for c in fs.get("conversion_factors", []))
        lines.append(f"**Fee schedule:** {md_text(fs['source'])}; claim lines priced {priced}"
                     + (f" (fee-schedule lines: {settings} setting; conversion factor {cfs})" if settings else "")
                     + (f"; qualifying APM rate for NPI {md_text(', '.join(fs['qualifying_apm_npis']))}" if fs.get("qualifying_apm_npis") else "")
                     + ".  ")
        if summ.get("unpriced_lines"):
            lines.append(f"**Unpriced lines:** {summ['unpriced_lines']} line(s) have neither a paid amount nor a fee-schedule amount; "
                         f"{summ.get('unpriced_lines_not_supported', 0)} of them are not supported and their overpayment is left blank "
                         f"(not counted as $0); see the data-quality list.  ")
        if summ.get("iv01_not_assessed_patient_months"):
            lines.append(f"**Initiating visit not assessed:** {summ['iv01_not_assessed_patient_months']} patient-month(s): the "
                         f"encounters table does not reach back 365 days before CCM began and shows no qualifying visit.  ")
        lines.append(f"**Condition map:** {md_text(r['condition_map']['source'])} ({md_text(r['condition_map']['icd10'])}).")
        return _escape_dollars("\n".join(lines))

    def summary_markdown(self) -> str:
        h = self.headline
        lines = [f"- CCM claim lines reviewed: **{h['claim_lines_reviewed']}**; not fully supported: **{h['claim_lines_in_error']}** "
                 f"({pct(h['error_rate_count'])} by count).",
                 f"- Paid {money(h['paid_amount'])}; overpayment **{money(h['overpayment'])}** ({pct(h['error_rate_dollars'])} of dollars).",
                 f"- Missed revenue (documented but unbilled units): **{money(h['missed_revenue'])}**.",
                 f"- Findings: {h['errors']} errors, {h['warnings']} warnings, {h['opportunities']} opportunities, in "
                 f"{h['patient_months_with_error']} of {h['patient_months']} patient-months with an error."]
        o = self.result.run.get("overrides")
        if o:
            lines.append(f"- Auditor decisions: {o['applied']} applied, {o['overturned']} finding(s) overturned after chart review "
                         f"(trail in the workpapers, sheet 'auditor decisions').")
        if h["sampled"]:
            lines.append(f"- Sample: {h['sample_size']} of {h['frame_size']} units, {h['sample_in_error']} in error "
                         f"({pct(h['sample_error_rate_count'])} by count, {pct(h['sample_error_rate_dollars'])} by dollars).")
            if "estimate_point" in h:
                lines.append(f"- Extrapolated overpayment: point estimate **{money(h['estimate_point'])}**; lower limit of the two-sided 90 % "
                             f"interval {money(h['estimate_lower_90'])} (OIG CIA reviews); two-sided 80 % lower limit "
                             f"{money(h['estimate_lower_80'])} (Medicare contractors, PIM ch. 8); self-disclosures use the point estimate.")
        return _escape_dollars("\n".join(lines))

    def rules(self) -> pd.DataFrame:
        return tables.by_rule(self.result)

    def criterion_tables(self) -> dict[str, pd.DataFrame]:
        r = self.rules()
        cols = ["id", "severity", "title", "findings", "patient_months", "amount", "explanation", "citation"]
        return {c: r[r["criterion"] == c][cols].reset_index(drop=True) for c in tables.CRITERIA_ORDER}

    def overlap_note(self) -> str:
        """The note every per-rule dollar table carries: the amounts overlap, the total comes from the claim lines."""
        r = self.rules()
        per_rule = float(r.loc[r["severity"] != "info", "amount"].sum())
        return _escape_dollars(f"*Per-rule dollars overlap: one claim line can fail several rules, so they add up to "
                               f"{money(per_rule)} while the total overpayment, from the claim lines, is "
                               f"{money(self.headline['overpayment'])}.*")

    def corrective_actions(self) -> pd.DataFrame:
        return tables.corrective_actions(self.result)

    def data_quality_summary(self) -> pd.DataFrame:
        """Data-quality rows counted by table, column and action, with one example problem each."""
        dq = self.shown_quality()
        if dq.empty:
            return pd.DataFrame(columns=["table", "column", "action", "rows", "example"])
        g = dq.groupby(["table", "column", "action"], dropna=False)
        return (g.size().rename("rows").to_frame().join(g["problem"].first().rename("example"))
                .reset_index().sort_values(["rows", "table"], ascending=[False, True]).reset_index(drop=True))

    def shown_quality(self) -> pd.DataFrame:
        """The data-quality table without identifying values (PHI columns' values and patient ids in notes masked)."""
        dq = self.result.data_quality
        if self.show_identifiers or dq.empty:
            return dq
        col = dq["column"].astype(str)
        phi = col.isin(["first_name", "last_name", "birth_date", "medicare_id"])
        pid = col.str.split("+").str[0].eq("patient_id")  # patient_id, and composite keys that start with it
        value = dq["value"].astype("string").where(~phi, "(hidden)")
        value = value.where(~pid, patient_keys(dq["value"], self.salt, self.practice_name))
        return dq.assign(value=value, problem=dq["problem"].str.replace(r"for patient \S+", "for a patient", regex=True))

    def trend(self) -> pd.DataFrame:
        """This quarter from this run; earlier quarters from the ledger's last successful report of each, else audited
        with this run's auditor decisions."""
        recorded = {}
        hist = self.ledger_history()
        if len(hist):
            import json
            ok = hist[(hist["status"] == "ok") & hist["headline"].notna()]
            for r in ok.itertuples():  # runs come oldest first: the latest report of a quarter wins
                recorded[r.period] = json.loads(r.headline)
        return tables.trend(self.practice or self.data_dir, parse_period(self.period), current=self.headline, recorded=recorded,
                            overrides=self.overrides)

    APPENDIX_ROWS = 150

    def appendix(self, limit: int | None = APPENDIX_ROWS) -> pd.DataFrame:
        """Findings per patient-month, the largest dollar amounts first; the report shows ``limit`` rows, the
        workpapers all of them (a PDF of thousands of table rows helps nobody and takes minutes to print)."""
        a = tables.appendix(self.result)
        a = a.assign(_d=a["overpayment"] + a["missed_amount"]).sort_values(["_d", "patient_id", "service_month"],
                                                                         ascending=[False, True, True], kind="mergesort")
        a = self.shown(a.drop(columns="_d").reset_index(drop=True))
        return a if limit is None else a.head(limit)

    def appendix_note(self) -> str:
        n = len(tables.appendix(self.result))
        shown = min(n, self.APPENDIX_ROWS)
        return (f"{n} patient-months have findings; the {shown} with the largest dollar amounts are listed here"
                + ("" if shown == n else "; all are in the workpapers, sheet 'appendix'") + ".")

    def staff_error_rate(self) -> pd.DataFrame:
        return tables.staff_error_rate(self.result)

    def month_error_rate(self) -> pd.DataFrame:
        return tables.month_error_rate(self.result)

    def ledger_history(self) -> pd.DataFrame:
        from ccmlib.report.ledger import runs
        if not self.ledger:
            return pd.DataFrame()
        return runs(self.ledger, self.practice_name)

    def write_workpapers(self) -> Path:
        res, h = self.result, self.headline
        summary = pd.DataFrame({"item": list(h), "value": pd.Series(list(h.values()), dtype=object)})  # numbers stay numbers
        sheets = {"summary": summary, "findings": self.shown(res.findings), "claim lines": self.shown(res.claim_lines),
                  "patient-months": self.shown(res.patient_months)}
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
        return write_workpapers(self.output_dir / "workpapers.xlsx", sheets)
