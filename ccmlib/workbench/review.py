"""Chart review: everything an auditor sees for one patient-month, and the widgets to record decisions.

The data functions are pure and tested; :class:`ChartReview` only wires them to ipywidgets. Every
decision is appended to ``AUDIT_DIR/overrides.csv`` the moment it is saved.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib.engine import decisions as decisions
from ccmlib.engine.pipeline import AuditResult, audit, write_outputs



def review_queue(res: AuditResult) -> pd.DataFrame:
    """Patient-months to review: sampled ones first, then those with errors, then with warnings."""
    pm = res.patient_months
    flagged = res.findings.loc[res.findings["severity"].isin(["error", "warning"]), ["patient_id", "service_month"]].drop_duplicates()
    q = pm.merge(flagged, on=["patient_id", "service_month"])[["patient_id", "service_month", "codes_billed", "errors", "warnings", "overpayment"]]
    q = q.assign(sampled=False)
    if res.sample is not None:
        s = res.sample[~res.sample["spare"]][["patient_id", "service_month"]].drop_duplicates().assign(sampled=True)
        extra = pm.merge(s, on=["patient_id", "service_month"])[q.columns.drop("sampled").tolist() + ["sampled"]]
        q = pd.concat([extra, q[~q.set_index(["patient_id", "service_month"]).index.isin(extra.set_index(["patient_id", "service_month"]).index)]])
    q = q.sort_values(["sampled", "errors", "overpayment", "patient_id", "service_month"], ascending=[False, False, False, True, True])
    q["label"] = (q["patient_id"].astype(str) + " " + q["service_month"] + ": " + q["errors"].astype(str) + " error(s), "
                  + q["warnings"].astype(str) + " warning(s)" + np.where(q["sampled"], " [sample]", ""))
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


class ChartReview:
    """The chart-review workbench: audit a practice, walk the queue, accept or overturn findings."""

    def __init__(self, data_dir, period: str, audit_dir, reviewer: str = "", sample_size: int | None = None, seed=None):
        self.data_dir, self.period, self.audit_dir = Path(data_dir), period, Path(audit_dir)
        self.reviewer = reviewer
        self.sample_size, self.seed = sample_size, seed
        self.log = self.audit_dir / decisions.FILE_NAME
        self.rerun()

    def rerun(self) -> AuditResult:
        """Audit again with every decision saved so far, and write the run folder."""
        from ccmlib.engine.pipeline import attach_sample

        self.result = audit(self.data_dir, period=self.period, overrides=self.log if self.log.exists() else None)
        if self.sample_size:
            attach_sample(self.result, self.sample_size, self.seed)
        write_outputs(self.result, self.audit_dir)
        self.queue = review_queue(self.result)
        return self.result

    def decide(self, finding: pd.Series, decision: str, reason: str, reviewer: str | None = None) -> dict:
        return decisions.record_decision(self.log, finding, decision, reviewer or self.reviewer, reason)

    # ---------------------------------------------------------------- widgets
    def widget(self):
        import ipywidgets as w
        from IPython.display import HTML, display

        from ccmlib.report.show import table_html

        reviewer = w.Text(value=self.reviewer, description="Reviewer", placeholder="your name")
        reviewer.add_class("ccm-reviewer")
        pick = w.Dropdown(options=list(zip(self.queue["label"], range(len(self.queue)))), description="Patient-month",
                          layout=w.Layout(width="70%"))
        pick.add_class("ccm-pick")
        view = w.Output()
        panel = w.VBox()
        status = w.HTML()
        status.add_class("ccm-status")
        rerun = w.Button(description="Re-run audit with decisions", button_style="info")
        rerun.add_class("ccm-rerun")

        def show(_=None):
            if pick.value is None:
                return
            row = self.queue.iloc[pick.value]
            v = patient_month_view(self.result, row["patient_id"], row["service_month"])
            view.clear_output()
            with view:
                for name in ("summary", "diagnoses", "consent", "care_plan", "time_log", "claim_lines"):
                    display(HTML(f"<h4>{name.replace('_', ' ')}</h4>" + table_html(v[name])))
                import matplotlib.pyplot as plt
                timeline_figure(v["time_log"], row["service_month"])
                plt.show()
            panel.children = [self._finding_row(w, fr, reviewer, status) for _, fr in v["findings"].iterrows()]

        def do_rerun(_):
            self.rerun()
            s = self.result.run["summary"]
            status.value = (f"<b>Re-run:</b> {s['findings']['error']} errors standing, {s['overturned']} overturned; "
                            f"overpayment ${s['overpayment']:,.2f}")
            current = pick.value
            pick.options = list(zip(self.queue["label"], range(len(self.queue))))
            pick.value = current if current is not None and current < len(self.queue) else (0 if len(self.queue) else None)
            show()

        pick.observe(show, names="value")
        rerun.on_click(do_rerun)
        show()
        return w.VBox([reviewer, pick, w.HTML("<h4>findings</h4>"), panel, w.HBox([rerun]), status, view])

    def _finding_row(self, w, finding: pd.Series, reviewer, status):
        text = w.HTML(f"<b>{finding['rule_id']}</b> ({finding['severity']}, ${finding['amount']:,.2f}): {finding['message']}"
                      + (f" <i>[{finding['review_decision']} by {finding['reviewed_by']}]</i>" if finding.get("review_decision") else ""))
        choice = w.ToggleButtons(options=["accept", "overturn"], value=finding.get("review_decision") or "accept")
        choice.add_class("ccm-decision")
        reason = w.Text(placeholder="reason (e.g. consent found in the scanned paper chart)", layout=w.Layout(width="50%"))
        reason.add_class("ccm-reason")
        save = w.Button(description="Save decision", button_style="primary")
        save.add_class("ccm-save")

        def on_save(_):
            try:
                row = self.decide(finding, choice.value, reason.value, reviewer.value)
            except Exception as exc:  # an InputError names what is missing
                status.value = f"<span style='color:#b2182b'>not saved: {exc}</span>"
                return
            status.value = f"saved: {row['decision']} {row['rule_id']} for {row['patient_id']} {row['service_month']} by {row['reviewer']}"

        save.on_click(on_save)
        return w.VBox([text, w.HBox([choice, reason, save])])
