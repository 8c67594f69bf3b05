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
from ccmlib.errors import InputError



def review_queue(res: AuditResult, keys: dict | None = None) -> pd.DataFrame:
    """Patient-months to review: sampled ones first (when the audit was sampled), then those with errors, then with
    warnings; with the review state of their sampled units (``units``, ``units_decided``) and how many of their findings
    have a decision. ``keys`` maps patient ids to the report's pseudonymous keys (shown beside the id)."""
    pm = res.patient_months
    f = res.findings[res.findings["severity"].isin(["error", "warning"])]
    flagged = f[["patient_id", "service_month"]].drop_duplicates()
    q = pm.merge(flagged, on=["patient_id", "service_month"])[["patient_id", "service_month", "codes_billed", "errors", "warnings", "overpayment"]]
    q = q.assign(sampled=False)
    units = pd.DataFrame(columns=["patient_id", "service_month", "units", "units_decided"])
    if res.sample is not None:
        smp = res.sample[~res.sample["spare"]]
        units = smp.assign(_d=smp["review_state"] == "decided").groupby(["patient_id", "service_month"], as_index=False).agg(
            units=("_d", "size"), units_decided=("_d", "sum"))
        s = units[["patient_id", "service_month"]].assign(sampled=True)
        extra = pm.merge(s, on=["patient_id", "service_month"])[q.columns.drop("sampled").tolist() + ["sampled"]]
        q = pd.concat([extra, q[~q.set_index(["patient_id", "service_month"]).index.isin(extra.set_index(["patient_id", "service_month"]).index)]])
    counts = f.assign(_d=f["review_decision"].fillna("") != "").groupby(["patient_id", "service_month"]).agg(
        findings=("_d", "size"), decided=("_d", "sum")).reset_index()
    q = q.merge(counts, on=["patient_id", "service_month"], how="left").fillna({"findings": 0, "decided": 0})
    q = q.merge(units, on=["patient_id", "service_month"], how="left").fillna({"units": 0, "units_decided": 0})
    for c in ("findings", "decided", "units", "units_decided"):
        q[c] = q[c].astype(int)
    q = q.sort_values(["sampled", "errors", "overpayment", "patient_id", "service_month"], ascending=[False, False, False, True, True])
    done = np.where(q["sampled"], q["units_decided"] >= q["units"], q["decided"] >= q["findings"])
    q["state"] = np.where(done, "decided", "undecided")
    what = np.where(q["sampled"], q["units_decided"].astype(str) + " of " + q["units"].astype(str) + " sampled unit"
                    + np.where(q["units"] == 1, "", "s") + " decided",
                    q["decided"].astype(str) + " of " + q["findings"].astype(str) + " finding" + np.where(q["findings"] == 1, "", "s") + " decided")
    key = q["patient_id"].astype(str).map(keys or {}).fillna("")
    who = q["patient_id"].astype(str) + np.where(key != "", " (" + key + ")", "")
    q["patient_key"] = key.to_numpy()
    q["label"] = (np.where(q["sampled"], "[sample] ", "") + who + " " + q["service_month"] + ": "
                  + _count(q["errors"], "error") + ", " + _count(q["warnings"], "warning") + " - " + q["state"] + " (" + what + ")")
    return q.reset_index(drop=True)


def _count(n: pd.Series, word: str) -> pd.Series:
    return n.astype(str) + " " + word + np.where(n == 1, "", "s")


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
    from ccmlib.engine.runfolder import read_run_json
    from ccmlib.errors import InputError

    audit_dir = audit_folder(audit_dir)
    run_json = audit_dir / "run.json"
    run = read_run_json(audit_dir)
    data = Path(run.get("data_folder") or "")
    if not data.is_dir():
        raise InputError(f"{run_json}: its data folder {data} is not there any more; the review needs the practice's data")
    return run


class ChartReview:
    """The chart-review workbench on an audit folder: walk the queue, confirm sampled units, accept or overturn findings,
    add defects the chart shows, re-run.

    ``ChartReview.from_audit(AUDIT_DIR)`` opens a ``check`` run folder (or a report's ``audit/``) as it was run: the
    same data folder, period, rules, fee schedule and sample (same seed); decisions go to ``AUDIT_DIR/overrides.csv``,
    which ``check`` and ``report`` apply by default. A decision shows at once (the unit's review state, the finding's
    decision); the money follows on a re-run (an add re-runs by itself: it changes what the line supports)."""

    def __init__(self, data_dir, period: str, audit_dir, reviewer: str = "", sample_size: int | None = None, seed=None,
                 options: dict | None = None, salt: bytes | None = None, practice_name: str | None = None):
        self.data_dir, self.period, self.audit_dir = Path(data_dir), period, Path(audit_dir)
        self.reviewer = reviewer
        self.sample_size, self.seed = sample_size, seed
        self.options = options or {}  # start/end, rules, fees, qp_npis, profile, spares, strata, unit of the original run
        self.log = self.audit_dir / decisions.FILE_NAME
        self._salt, self._practice = salt, practice_name or self.data_dir.resolve().name
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
        from ccmlib.engine.profiles import from_run
        opts["profile"] = from_run(run.get("profile"))  # the same catalog variant (strict-mac, a user's file, ...)
        smp = run.get("sample") or {}
        size = seed = None
        if smp:
            size, seed = int(smp["quantity"]), smp["seed"]
            opts.update(strata=smp.get("strata"), unit=smp.get("unit", "claim_lines"))
            sample_csv = audit_dir / "sample.csv"
            if sample_csv.is_file():
                opts["spares"] = int(pd.read_csv(sample_csv, usecols=["spare"])["spare"].astype(str).str.lower().eq("true").sum())
        return cls(data, run["period"]["label"], audit_dir, reviewer=reviewer, sample_size=size, seed=seed, options=opts)

    @property
    def unit(self) -> str:
        return self.options.get("unit", "claim_lines")

    def rerun(self) -> AuditResult:
        """Audit again with every decision saved so far, and write the run folder."""
        from ccmlib.engine.pipeline import attach_sample

        o = self.options
        kw = {k: o[k] for k in ("rules", "fees", "conditions", "qp_npis", "profile") if o.get(k)}
        if o.get("start"):
            kw.update(start=o["start"], end=o["end"])
        else:
            kw["period"] = self.period
        self.result = audit(self.data_dir, overrides=self.log if self.log.exists() else None, **kw)
        if self.sample_size:
            attach_sample(self.result, self.sample_size, self.seed, o.get("spares", 0), o.get("strata"), self.unit)
        crosswalk = self.audit_dir / "crosswalk.csv"
        write_outputs(self.result, self.audit_dir, extra={"crosswalk": pd.read_csv(crosswalk, dtype=str)} if crosswalk.is_file() else None)
        self.keys = self._patient_keys()
        self.queue = review_queue(self.result, self.keys)
        return self.result

    def _patient_keys(self) -> dict:
        """patient id -> the report's PT- key: the report's crosswalk when the folder has one, else the engagement's salt
        (the key a report of this practice beside this folder shows)."""
        from ccmlib.report.privacy import engagement_root, load_salt, patient_keys

        crosswalk = self.audit_dir / "crosswalk.csv"
        if crosswalk.is_file():
            cw = pd.read_csv(crosswalk, dtype=str)
            return dict(zip(cw["patient_id"], cw["patient_key"]))
        ids = self.result.patient_months["patient_id"].astype(str).drop_duplicates()
        salt = self._salt if self._salt is not None else load_salt(engagement_root(self.audit_dir))
        return dict(zip(ids, patient_keys(ids, salt, self._practice)))

    # ---------------------------------------------------------------- decisions
    def decide(self, finding: pd.Series, decision: str, reason: str = "", reviewer: str | None = None, evidence: str = "") -> dict:
        """Accept or overturn a finding (or withdraw an auditor's own, by overturning it); shown at once."""
        if str(decision or "").lower().strip() in ("confirm", "add"):
            raise InputError("confirm and add are decisions on a unit: use confirm() or add()")
        row = decisions.record_decision(self.log, finding, decision, reviewer or self.reviewer, reason, evidence=evidence)
        self.refresh()
        return row

    def confirm(self, unit: pd.Series | dict, reviewer: str | None = None, reason: str = "", evidence: str = "") -> dict:
        """The unit was reviewed against the chart and its determination stands (with or without findings)."""
        row = decisions.record_decision(self.log, unit, "confirm", reviewer or self.reviewer, reason, evidence=evidence)
        self.refresh()
        return row

    def add(self, unit: pd.Series | dict, rule_id: str, units_supported: int, reason: str, evidence: str, description: str = "",
            reviewer: str | None = None) -> dict:
        """A defect the chart shows on a claim line (or, without claim_id and line, on the whole patient-month): the rule
        it breaks (a catalog id or CHART with a description), the units the chart supports. Re-runs the audit: an added
        finding changes the line's supported units and money like an engine finding."""
        u = dict(unit) | {"rule_id": rule_id}
        if rule_id not in decisions_rule_ids():
            raise InputError(f"{rule_id!r} is not a rule of the catalog (or CHART for a defect no rule describes)")
        billed = _units_billed(self.result, u)
        if billed is not None and units_supported is not None and str(units_supported).strip() != "" and int(units_supported) > billed:
            raise InputError(f"{units_supported} units supported is more than the line billed ({billed})")
        row = decisions.record_decision(self.log, u, "add", reviewer or self.reviewer, reason, evidence=evidence,
                                        units_supported=units_supported, description=description)
        self.rerun()
        return row

    def confirm_undecided(self, patient_id: str, month: str, reviewer: str | None = None) -> list[dict]:
        """Confirm every undecided sampled unit of one patient-month (one recorded decision per unit)."""
        u = self.units(patient_id, month)
        rows = [decisions.record_decision(self.log, r, "confirm", reviewer or self.reviewer)
                for _, r in u[u["review_state"] == "undecided"].iterrows()]
        self.refresh()
        return rows

    def refresh(self) -> None:
        """Show the decisions saved so far without re-auditing: each finding's decision, each sampled unit's state, the
        queue. (Money changes only on a re-run.)"""
        from ccmlib.engine.pipeline import review_record

        log = decisions.load(self.log)
        last = decisions.latest(log)
        f = self.result.findings
        key = decisions.finding_key(f)
        d = last.set_index("finding_key")
        hit = key.isin(d.index).to_numpy()
        for col, src in (("review_decision", "decision"), ("reviewed_by", "reviewer"), ("reviewed_at", "decided_at"), ("review_reason", "reason")):
            f.loc[hit, col] = key[hit].map(d[src]).to_numpy()
        self.result.decisions = last
        if self.result.sample is not None:
            base = self.result.sample.drop(columns=[c for c in (*decisions.STATE_COLUMNS, "findings_open") if c in self.result.sample.columns])
            self.result.sample = decisions.unit_states(base, self.unit, f, last)
            self.result.run["review"] = review_record(self.result.sample, self.unit)
        self.queue = review_queue(self.result, self.keys)

    def saved(self, finding: pd.Series | dict) -> dict:
        """The decision in force on a finding (decision, reviewer, when, reason, evidence), or {}."""
        last = decisions.latest(decisions.load(self.log))
        k = decisions.finding_key(pd.DataFrame([dict(finding)])).iloc[0]
        hit = last[last["finding_key"] == k]
        return {} if hit.empty else hit.iloc[-1].to_dict()

    def units(self, patient_id: str, month: str) -> pd.DataFrame:
        """The sampled units (not spares) of one patient-month with their review state."""
        if self.result.sample is None:
            return pd.DataFrame(columns=["patient_id", "service_month", "review_state"])
        s = self.result.sample
        return s[(~s["spare"]) & (s["patient_id"].astype(str) == str(patient_id)) & (s["service_month"].astype(str) == month)]

    def next_undecided(self, after=None):
        """(patient_id, month) of the next patient-month in the queue with an undecided sampled unit (or, without a
        sample, an undecided finding), after ``after``; wraps around; None when everything is decided."""
        q = self.queue
        open_ = q[q["state"] == "undecided"]
        if open_.empty:
            return None
        keys = list(zip(q["patient_id"].astype(str), q["service_month"]))
        start = keys.index(tuple(after)) + 1 if after is not None and tuple(after) in keys else 0
        for i in list(range(start, len(q))) + list(range(0, start)):
            if q["state"].iloc[i] == "undecided":
                return keys[i]
        return None

    def counts(self) -> str:
        """The figures the report will show for this audit (run.json's summary after the decisions)."""
        s = self.result.run["summary"]
        text = (f"{s['claim_lines_not_supported']} of {s['claim_lines']} claim lines not fully supported; {s['findings']['error']} "
                f"errors standing, {s['overturned']} overturned; overpayment ${s['overpayment']:,.2f}")
        rv = self.result.run.get("review")
        if rv:
            text += f". Sample: {rv['decided']} of {rv['sampled_units']} units decided, {rv['undecided']} undecided"
        return text

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
        units_box = w.VBox()
        add_box = w.VBox()
        status = w.HTML()
        status.add_class("ccm-status")
        totals = w.HTML()
        totals.add_class("ccm-totals")
        rerun = w.Button(description="Re-run audit with decisions", button_style="info", layout=w.Layout(width="auto"))
        rerun.add_class("ccm-rerun")
        nxt = w.Button(description="Next undecided", layout=w.Layout(width="auto"))
        nxt.add_class("ccm-next")
        confirm_all = w.Button(description="Confirm all undecided on this page", button_style="success", layout=w.Layout(width="auto"))
        confirm_all.add_class("ccm-confirm-all")
        style = w.HTML("<style>.ccm-view table.ccm-table{table-layout:fixed;width:100%;max-width:1180px;font-size:12px;"
                       "border-collapse:collapse}.ccm-view td,.ccm-view th{overflow-wrap:anywhere;word-break:break-word;"
                       "padding:2px 4px;border-bottom:1px solid #ddd;text-align:left}.ccm-view{max-width:1200px}</style>")
        view.add_class("ccm-view")

        def set_totals():
            totals.value = f"<b>This audit:</b> {escape(self.counts())}"

        def refresh_queue(keep=None):
            current = keep if keep is not None else pick.value
            opts = self._options()
            pick.unobserve(show, names="value")
            pick.options = opts
            keys = [k for _, k in opts]
            pick.value = current if current in keys else (keys[0] if keys else None)  # the reviewer stays where they were
            pick.observe(show, names="value")
            set_totals()

        def after_save(message):
            refresh_queue()
            status.value = message
            show(redraw_view=False)

        def show(_=None, redraw_view=True):
            if pick.value is None:
                return
            pid, month = pick.value
            v = patient_month_view(self.result, pid, month)
            # the forms first, the tables and the figure (the slow part) after: a reviewer who sees the new heading types
            # into the new patient-month's forms, never into the last one's
            units_box.children = [self._unit_row(w, u, reviewer, after_save, status) for _, u in self.units(pid, month).iterrows()]
            panel.children = [self._finding_row(w, fr, reviewer, after_save, status) for _, fr in v["findings"].iterrows()] or [
                w.HTML("<i>no findings on this patient-month</i>")]
            add_box.children = [self._add_form(w, v["claim_lines"], pid, month, reviewer, status, after_rerun)]
            if redraw_view:
                view.clear_output()
                with view:
                    key = self.keys.get(str(pid), "")
                    display(HTML(f"<h3>{escape(str(pid))}" + (f" &middot; report key {escape(key)}" if key else "")
                                 + f" &middot; {escape(month)}</h3>"))
                    for name in ("summary", "diagnoses", "consent", "care_plan", "time_log", "claim_lines"):
                        display(HTML(f"<h4>{name.replace('_', ' ')}</h4>" + table_html(_for_view(v[name], name))))
                    import matplotlib.pyplot as plt
                    timeline_figure(v["time_log"], month)
                    plt.show()

        def after_rerun(message):  # the audit has been re-run (the button, or an add, which re-runs by itself): redraw
            refresh_queue(pick.value)
            status.value = message
            show()

        def do_rerun(_):
            self.rerun()
            after_rerun("re-run with every decision saved so far")

        def go_next(_):
            nk = self.next_undecided(pick.value)
            if nk is None:
                status.value = "every sampled unit is decided" if self.result.sample is not None else "every finding is decided"
                return
            pick.value = nk

        def do_confirm_all(_):
            if pick.value is None:
                return
            try:
                rows = self.confirm_undecided(*pick.value, reviewer=reviewer.value)
            except Exception as exc:  # an InputError names what is missing
                status.value = f"<span style='color:#b2182b'>not saved: {escape(str(exc))}</span>"
                return
            after_save(escape(f"saved: confirm for {len(rows)} undecided unit(s) of this page"))

        pick.observe(show, names="value")
        rerun.on_click(do_rerun)
        nxt.on_click(go_next)
        confirm_all.on_click(do_confirm_all)
        set_totals()
        show()
        return w.VBox([style, reviewer, w.HBox([pick]), w.HBox([nxt, confirm_all, rerun]), totals, status,
                       w.HTML("<h4>sampled units on this page</h4>"), units_box, w.HTML("<h4>findings</h4>"), panel,
                       w.HTML("<h4>add a defect the chart shows</h4>"), add_box, view])

    def _options(self):
        return [(label, (pid, month)) for label, pid, month in zip(self.queue["label"], self.queue["patient_id"].astype(str), self.queue["service_month"])]

    def _unit_row(self, w, unit: pd.Series, reviewer, after_save, status):
        what = (f"claim {unit['claim_id']} line {int(unit['line'])} ({unit.get('cpt_code', '')})" if "claim_id" in unit.index
                else f"patient-month {unit['patient_id']} {unit['service_month']}")
        state = str(unit["review_state"])
        by = f" by {unit['decided_by']} at {unit['decided_at']}" if unit.get("decided_by") else ""
        text = w.HTML(f"<b>{escape(what)}</b>: paid ${float(unit['examined']):,.2f}, overpayment ${float(unit['difference']):,.2f} - "
                      f"<span class='ccm-unit-state'>{escape(state)}{escape(by)}</span>"
                      + (f" <i>({escape(str(unit['decisions']))})</i>" if unit.get("decisions") else ""))
        text.add_class("ccm-unit")
        btn = w.Button(description="Confirm (chart reviewed)", layout=w.Layout(width="auto"), disabled=state == "decided")
        btn.add_class("ccm-confirm")

        def on_confirm(_):
            try:
                self.confirm(unit, reviewer=reviewer.value)
            except Exception as exc:
                status.value = f"<span style='color:#b2182b'>not saved: {escape(str(exc))}</span>"
                return
            after_save(escape(f"saved: confirm {what} by {reviewer.value}"))

        btn.on_click(on_confirm)
        return w.HBox([text, btn])

    def _finding_row(self, w, finding: pd.Series, reviewer, after_save, status):
        decided = finding.get("review_decision") or ""
        saved = self.saved(finding) if decided else {}
        by = f" by {finding['reviewed_by']}" if decided else ""
        who = "auditor's finding" if finding.get("found_by") == "auditor" else ""
        text = w.HTML(f"<b>{escape(str(finding['rule_id']))}</b> ({escape(str(finding['severity']))}"
                      + (f", {who}" if who else "") + f", ${finding['amount']:,.2f}): {escape(str(finding['message']))}"
                      + (f" <i class='ccm-decided'>[{escape(decided)}{escape(by)}]</i>" if decided else " <i class='ccm-decided'>[undecided]</i>"))
        options = ["accept", "overturn"]
        choice = w.ToggleButtons(options=options, value=decided if decided in options else None,
                                 tooltips=["the finding stands", "the chart shows the finding is wrong"])
        choice.add_class("ccm-decision")
        reason = w.Text(value=str(saved.get("reason", "")), placeholder="reason (needed to overturn)", layout=w.Layout(width="32%"))
        reason.add_class("ccm-reason")
        evidence = w.Text(value=str(saved.get("evidence", "")), placeholder="evidence: document, page", layout=w.Layout(width="24%"))
        evidence.add_class("ccm-evidence")
        save = w.Button(description="Save decision", button_style="primary", layout=w.Layout(width="auto"))
        save.add_class("ccm-save")

        def on_save(_):
            try:
                row = self.decide(finding, choice.value, reason.value, reviewer.value, evidence.value)
            except Exception as exc:  # an InputError names what is missing
                status.value = f"<span style='color:#b2182b'>not saved: {escape(str(exc))}</span>"
                return
            after_save(escape(f"saved: {row['decision']} {row['rule_id']} for {row['patient_id']} {row['service_month']} "
                              f"by {row['reviewer']}"))

        save.on_click(on_save)
        return w.VBox([text, w.HBox([choice, reason, evidence, save])])

    def _add_form(self, w, lines: pd.DataFrame, pid: str, month: str, reviewer, status, after_add):
        from ccmlib.engine.rules import load_all

        opts = [("the whole patient-month (no line supported)", None)] + [
            (f"claim {c} line {int(ln)} ({code}, {int(u)} unit{'s' if u != 1 else ''})", (str(c), int(ln)))
            for c, ln, code, u in zip(lines["claim_id"], lines["line"], lines["cpt_code"], lines["units_billed"])]
        on = w.Dropdown(options=opts, value=opts[1][1] if len(opts) > 1 else None, description="On", style={"description_width": "initial"},
                        layout=w.Layout(width="48%"))
        on.add_class("ccm-add-line")
        rule = w.Dropdown(options=[(f"{r.id}: {r.title}", r.id) for r in sorted(load_all().values(), key=lambda r: r.id)]
                          + [("CHART: a defect no rule describes (describe it)", decisions.CHART)], value=decisions.CHART,
                          description="Rule", style={"description_width": "initial"}, layout=w.Layout(width="48%"))
        rule.add_class("ccm-add-rule")
        units = w.BoundedIntText(value=0, min=0, max=99, description="Units the chart supports", style={"description_width": "initial"},
                                 layout=w.Layout(width="24%"))
        units.add_class("ccm-add-units")
        desc = w.Text(placeholder="description of the defect (for CHART)", layout=w.Layout(width="36%"))
        desc.add_class("ccm-add-description")
        reason = w.Text(placeholder="reason (required)", layout=w.Layout(width="36%"))
        reason.add_class("ccm-add-reason")
        evidence = w.Text(placeholder="evidence: document, page (required)", layout=w.Layout(width="36%"))
        evidence.add_class("ccm-add-evidence")
        save = w.Button(description="Add finding", button_style="warning", layout=w.Layout(width="auto"))
        save.add_class("ccm-add")

        def on_add(_):
            unit = {"patient_id": pid, "service_month": month}
            if on.value is not None:
                unit.update(claim_id=on.value[0], line=on.value[1])
            try:
                row = self.add(unit, rule.value, units.value, reason.value, evidence.value, desc.value, reviewer=reviewer.value)
            except Exception as exc:
                status.value = f"<span style='color:#b2182b'>not saved: {escape(str(exc))}</span>"
                return
            after_add(escape(f"saved: add {row['rule_id']} on {pid} {month} by {row['reviewer']}; audit re-run"))

        save.on_click(on_add)
        where = w.HTML(f"adding to <b>{escape(str(pid))} {escape(str(month))}</b>")  # the form's own patient-month, in words
        where.add_class("ccm-add-for")
        return w.VBox([where, w.HBox([on, rule]), w.HBox([units, desc]), w.HBox([reason, evidence, save])])


def decisions_rule_ids() -> set[str]:
    from ccmlib.engine.rules import load_all

    return set(load_all()) | {decisions.CHART}


def _units_billed(res: AuditResult, unit: dict) -> int | None:
    if not unit.get("claim_id"):
        return None
    cl = res.claim_lines
    hit = cl[(cl["claim_id"].astype(str) == str(unit["claim_id"])) & (cl["line"].astype("int64") == int(unit["line"]))]
    return int(hit["units_billed"].iloc[0]) if len(hit) else None


VIEW_COLUMNS = {"claim_lines": ["claim_id", "line", "service_date", "billing_npi", "cpt_code", "units_billed", "units_supported",
                                "paid_amount", "overpayment", "determination", "place_of_service", "rule_ids"]}


def _for_view(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """A table of the patient-month view as the app shows it: minutes as whole numbers, the columns that fit 1280 px."""
    out = df[[c for c in VIEW_COLUMNS[name] if c in df.columns]] if name in VIEW_COLUMNS else df.copy()
    for c in ("qualifying_minutes", "practitioner_minutes", "minutes", "qualifying"):
        if c in out.columns and pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].round(0).astype("Int64")
    return out
