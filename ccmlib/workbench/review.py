"""Chart review: everything an auditor sees for one patient-month, and the widgets to record decisions.

The data functions are pure and tested; :class:`ChartReview` only wires them to ipywidgets. Every
decision is appended to ``AUDIT_DIR/overrides.csv`` the moment it is saved.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib.engine import decisions as decisions
from ccmlib.engine.pipeline import AuditResult, audit, write_outputs



def review_queue(res: AuditResult) -> pd.DataFrame:
    """Patient-months to review: sampled ones first (when the audit was sampled), then those with errors, then with
    warnings; with how many of their findings have a decision."""
    pm = res.patient_months
    f = res.findings[res.findings["severity"].isin(["error", "warning"])]
    flagged = f[["patient_id", "service_month"]].drop_duplicates()
    q = pm.merge(flagged, on=["patient_id", "service_month"])[["patient_id", "service_month", "codes_billed", "errors", "warnings", "overpayment"]]
    q = q.assign(sampled=False)
    if res.sample is not None:
        s = res.sample[~res.sample["spare"]][["patient_id", "service_month"]].drop_duplicates().assign(sampled=True)
        extra = pm.merge(s, on=["patient_id", "service_month"])[q.columns.drop("sampled").tolist() + ["sampled"]]
        q = pd.concat([extra, q[~q.set_index(["patient_id", "service_month"]).index.isin(extra.set_index(["patient_id", "service_month"]).index)]])
    counts = f.assign(_d=f["review_decision"].fillna("") != "").groupby(["patient_id", "service_month"]).agg(
        findings=("_d", "size"), decided=("_d", "sum")).reset_index()
    q = q.merge(counts, on=["patient_id", "service_month"], how="left").fillna({"findings": 0, "decided": 0})
    q[["findings", "decided"]] = q[["findings", "decided"]].astype(int)
    q = q.sort_values(["sampled", "errors", "overpayment", "patient_id", "service_month"], ascending=[False, False, False, True, True])
    state = np.where(q["decided"] >= q["findings"], "decided", np.where(q["decided"] > 0, q["decided"].astype(str) + " of "
                                                                         + q["findings"].astype(str) + " decided", "undecided"))
    q["label"] = (np.where(q["sampled"], "[sample] ", "") + q["patient_id"].astype(str) + " " + q["service_month"] + ": "
                  + q["errors"].astype(str) + " error(s), " + q["warnings"].astype(str) + " warning(s) - " + state)
    return q.reset_index(drop=True)


def patient_month_view(res: AuditResult, patient_id: str, month: str) -> dict[str, pd.DataFrame]:
    """Conditions, consent, care plan in force, time log with exclusion reasons, claim lines and findings."""
    return res.patient_month(patient_id, month)


def timeline_figure(time_log: pd.DataFrame, month: str):
    """Cumulative qualifying minutes through the month against the 20/40/60-minute thresholds."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    t = time_log.sort_values("date")
    days = pd.to_datetime(t["date"]).dt.day
    ax.step(np.r_[1, days.to_numpy()], np.r_[0, t["qualifying"].cumsum().to_numpy()], where="post", label="qualifying")
    ax.step(np.r_[1, days.to_numpy()], np.r_[0, t["minutes"].fillna(0).cumsum().to_numpy()], where="post", linestyle=":", label="logged")
    for th in (20, 40, 60):
        ax.axhline(th, color="#b2182b", linewidth=0.8, linestyle="--")
    ax.set_xlim(1, 31)
    ax.set_xlabel(f"day of {month}")
    ax.set_ylabel("cumulative minutes")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def audit_folder(folder) -> Path:
    """The audit folder itself, or a report folder's ``audit/`` (where ``report`` looks for decisions)."""
    folder = Path(folder)
    if (folder / "audit" / "run.json").is_file() and not (folder / "run.json").is_file():
        return folder / "audit"
    return folder


def audit_run(audit_dir) -> dict:
    """run.json of an audit folder, checked: a folder with run.json whose data folder is still there."""
    import json

    from ccmlib.errors import InputError

    audit_dir = audit_folder(audit_dir)
    run_json = audit_dir / "run.json"
    if not run_json.is_file():
        raise InputError(f"{audit_dir}: not an audit folder (no run.json); run `ccm-audit check DATA_DIR --out {audit_dir}` first, "
                         f"or give a report's audit/ folder")
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{run_json}: not a ccm-audit run.json ({exc})") from None
    data = Path(run.get("data_folder") or "")
    if not data.is_dir():
        raise InputError(f"{run_json}: its data folder {data} is not there any more; the review needs the practice's data")
    return run


class ChartReview:
    """The chart-review workbench on an audit folder: walk the queue, accept or overturn findings, re-run.

    ``ChartReview.from_audit(AUDIT_DIR)`` opens a ``check`` run folder (or a report's ``audit/``) as it was run: the
    same data folder, period, rules, fee schedule and sample (same seed); decisions go to ``AUDIT_DIR/overrides.csv``,
    which ``check`` and ``report`` apply by default."""

    def __init__(self, data_dir, period: str, audit_dir, reviewer: str = "", sample_size: int | None = None, seed=None,
                 options: dict | None = None):
        self.data_dir, self.period, self.audit_dir = Path(data_dir), period, Path(audit_dir)
        self.reviewer = reviewer
        self.sample_size, self.seed = sample_size, seed
        self.options = options or {}  # start/end, rules, fees, qp_npis, spares, strata, unit of the original run
        self.log = self.audit_dir / decisions.FILE_NAME
        self.rerun()

    @classmethod
    def from_audit(cls, audit_dir, reviewer: str = "") -> "ChartReview":
        """Open an existing audit folder (a ``check`` run folder with run.json) with the options it was run with."""
        audit_dir = audit_folder(audit_dir)
        run = audit_run(audit_dir)
        data = Path(run["data_folder"])
        from ccmlib.engine.periods import parse_period
        try:
            same = parse_period(run["period"]["label"]).to_json() == run["period"]
        except Exception:  # a --from/--to run has a label that is not a period
            same = False
        opts = {"start": None if same else run["period"]["from"], "end": None if same else run["period"]["to"],
                "rules": [r["rule_id"] for r in run.get("rules", [])] or None,
                "qp_npis": tuple(run.get("fee_schedule", {}).get("qualifying_apm_npis") or ())}
        fees = run.get("fee_schedule", {}).get("source", "")
        if fees and not fees.startswith("bundled"):
            opts["fees"] = fees
        cond = run.get("condition_map", {}).get("source", "")
        if cond and not cond.startswith("bundled"):
            opts["conditions"] = cond
        smp = run.get("sample") or {}
        size = seed = None
        if smp:
            size, seed = int(smp["quantity"]), smp["seed"]
            opts.update(strata=smp.get("strata"), unit=smp.get("unit", "claim_lines"))
            sample_csv = audit_dir / "sample.csv"
            if sample_csv.is_file():
                opts["spares"] = int(pd.read_csv(sample_csv, usecols=["spare"])["spare"].astype(str).str.lower().eq("true").sum())
        return cls(data, run["period"]["label"], audit_dir, reviewer=reviewer, sample_size=size, seed=seed, options=opts)

    def rerun(self) -> AuditResult:
        """Audit again with every decision saved so far, and write the run folder."""
        from ccmlib.engine.pipeline import attach_sample

        o = self.options
        kw = {k: o[k] for k in ("rules", "fees", "conditions", "qp_npis") if o.get(k)}
        if o.get("start"):
            kw.update(start=o["start"], end=o["end"])
        else:
            kw["period"] = self.period
        self.result = audit(self.data_dir, overrides=self.log if self.log.exists() else None, **kw)
        if self.sample_size:
            attach_sample(self.result, self.sample_size, self.seed, o.get("spares", 0), o.get("strata"), o.get("unit", "claim_lines"))
        write_outputs(self.result, self.audit_dir)
        self.queue = review_queue(self.result)
        return self.result

    def decide(self, finding: pd.Series, decision: str, reason: str = "", reviewer: str | None = None, evidence: str = "") -> dict:
        return decisions.record_decision(self.log, finding, decision, reviewer or self.reviewer, reason, evidence=evidence)

    def counts(self) -> str:
        """The figures the report will show for this audit (run.json's summary after the decisions)."""
        s = self.result.run["summary"]
        return (f"{s['claim_lines_not_supported']} of {s['claim_lines']} claim lines not fully supported; {s['findings']['error']} "
                f"errors standing, {s['overturned']} overturned; overpayment ${s['overpayment']:,.2f}")

    # ---------------------------------------------------------------- widgets
    def widget(self):
        import ipywidgets as w
        from IPython.display import HTML, display

        from ccmlib.report.show import table_html

        wide = {"description_width": "initial"}
        reviewer = w.Text(value=self.reviewer, description="Reviewer", placeholder="your name", style=wide)
        reviewer.add_class("ccm-reviewer")
        pick = w.Dropdown(options=self._options(), description="Patient-month", style=wide, layout=w.Layout(width="95%"))
        pick.add_class("ccm-pick")
        view = w.Output()
        panel = w.VBox()
        status = w.HTML()
        status.add_class("ccm-status")
        totals = w.HTML(f"<b>This audit:</b> {self.counts()}")
        totals.add_class("ccm-totals")
        rerun = w.Button(description="Re-run audit with decisions", button_style="info", layout=w.Layout(width="auto"))
        rerun.add_class("ccm-rerun")

        def show(_=None):
            if pick.value is None:
                return
            pid, month = pick.value
            v = patient_month_view(self.result, pid, month)
            view.clear_output()
            with view:
                for name in ("summary", "diagnoses", "consent", "care_plan", "time_log", "claim_lines"):
                    display(HTML(f"<h4>{name.replace('_', ' ')}</h4>" + table_html(v[name])))
                import matplotlib.pyplot as plt
                timeline_figure(v["time_log"], month)
                plt.show()
            panel.children = [self._finding_row(w, fr, reviewer, status) for _, fr in v["findings"].iterrows()]

        def do_rerun(_):
            current = pick.value
            self.rerun()
            totals.value = f"<b>This audit:</b> {self.counts()}"
            status.value = "re-run with every decision saved so far"
            opts = self._options()
            pick.unobserve(show, names="value")
            pick.options = opts
            keys = [k for _, k in opts]
            pick.value = current if current in keys else (keys[0] if keys else None)  # the reviewer stays where they were
            pick.observe(show, names="value")
            show()

        pick.observe(show, names="value")
        rerun.on_click(do_rerun)
        show()
        return w.VBox([reviewer, pick, totals, w.HTML("<h4>findings</h4>"), panel, w.HBox([rerun]), status, view])

    def _options(self):
        return [(label, (pid, month)) for label, pid, month in zip(self.queue["label"], self.queue["patient_id"], self.queue["service_month"])]

    def _finding_row(self, w, finding: pd.Series, reviewer, status):
        decided = finding.get("review_decision") or ""
        text = w.HTML(f"<b>{escape(str(finding['rule_id']))}</b> ({escape(str(finding['severity']))}, ${finding['amount']:,.2f}): "
                      f"{escape(str(finding['message']))}"
                      + (f" <i>[{escape(decided)} by {escape(str(finding['reviewed_by']))}]</i>" if decided else " <i>[undecided]</i>"))
        choice = w.ToggleButtons(options=["accept", "overturn"], value=decided or None, tooltips=["the finding stands",
                                                                                                  "the chart shows the finding is wrong"])
        choice.add_class("ccm-decision")
        reason = w.Text(placeholder="reason (needed to overturn)", layout=w.Layout(width="32%"))
        reason.add_class("ccm-reason")
        evidence = w.Text(placeholder="evidence: document, page", layout=w.Layout(width="24%"))
        evidence.add_class("ccm-evidence")
        save = w.Button(description="Save decision", button_style="primary", layout=w.Layout(width="auto"))
        save.add_class("ccm-save")

        def on_save(_):
            try:
                row = self.decide(finding, choice.value, reason.value, reviewer.value, evidence.value)
            except Exception as exc:  # an InputError names what is missing
                status.value = f"<span style='color:#b2182b'>not saved: {escape(str(exc))}</span>"
                return
            status.value = escape(f"saved: {row['decision']} {row['rule_id']} for {row['patient_id']} {row['service_month']} "
                                  f"by {row['reviewer']}")

        save.on_click(on_save)
        return w.VBox([text, w.HBox([choice, reason, evidence, save])])
