"""Pitfalls training: one small synthetic chart per rule of the catalog, knobs a trainee can turn,
and the verdict the rule engine gives. The widgets in ``notebooks/pitfalls_training.ipynb`` call
only :func:`scenario_chart`, :func:`verdict` and :class:`TrainingApp`."""
from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from ccmlib import paths
from ccmlib.engine.pipeline import audit
from ccmlib.synth.examples import OTHER_NPI, chart, claim, entry
from ccmlib.engine.rules import load_all


def _minutes(c, total: int) -> None:
    """Spread ``total`` minutes over the two clean entries (15 + rest, or all in the first)."""
    first = min(15, total)
    c["time_entries"][0].update(minutes=str(first), end_time=f"09:{first:02d}")
    c["time_entries"][1].update(minutes=str(total - first), end_time=f"10:{total - first:02d}" if total - first < 60 else "")


def _add_claim(code, units=1, **kw):
    return lambda c: c["claims"].append(claim("C1", code, units=units, line=len(c["claims"]) + 1, **kw))


#: rule -> (what the chart shows, change that makes the pitfall)
SCENARIOS = {
    "TIME-01": ("An entry has no description.", lambda c: c["time_entries"].append(entry("E3", 10, description=""))),
    "TIME-02": ("The front desk logged CCM time.", lambda c: c["time_entries"].append(entry("E3", 10, staff="X1"))),
    "TIME-03": ("The nurse logged two entries at the same minute.",
                lambda c: c["time_entries"].append(entry("E3", 10, date="2026-01-06", start="09:05", end="09:15"))),
    "TIME-04": ("Face-to-face visit time was logged as CCM.", lambda c: c["time_entries"].append(entry("E3", 10, face_to_face="true"))),
    "TIME-05": ("Remote-monitoring time was counted again for CCM.",
                lambda c: c["time_entries"].append(entry("E3", 10, counted_toward="99457"))),
    "TIME-06": ("Only 18 minutes were documented, 99490 billed anyway.", lambda c: _minutes(c, 18)),
    "TIME-07": ("Two 99439 units billed on 45 minutes.", lambda c: (_minutes(c, 45), _add_claim("99439", 2, paid=91.86)(c))),
    "TIME-08": ("Complex CCM 99487 billed on 50 minutes.",
                lambda c: (_minutes(c, 50), c["claims"].__setitem__(0, claim("C1", "99487", paid=131.65)))),
    "TIME-09": ("99491 billed, but the physician spent 0 minutes (staff did the work).",
                lambda c: c["claims"].__setitem__(0, claim("C1", "99491", paid=82.16))),
    "CONS-01": ("No consent on file.", lambda c: c.__setitem__("consents", [])),
    "CONS-02": ("The consent does not mention cost sharing.", lambda c: c["consents"][0].update(informed_cost_sharing="")),
    "CONS-03": ("The patient revoked consent in December.", lambda c: c["consents"][0].update(revoked_date="2025-12-20")),
    "CONS-04": ("The consent was given for another practitioner.", lambda c: c["consents"][0].update(practitioner_npi=OTHER_NPI)),
    "CONS-05": ("A call on Jan 3 happened before the consent of Jan 5.",
                lambda c: (c["consents"][0].update(consent_date="2026-01-05"), c["time_entries"].append(entry("E3", 10, date="2026-01-03")))),
    "CONS-06": ("The consent does not say CCM is available.", lambda c: c["consents"][0].update(informed_availability="")),
    "ELIG-01": ("Two diabetes codes are one condition.",
                lambda c: c.__setitem__("diagnoses", [{"patient_id": "P1", "icd10_code": "E11.9"}, {"patient_id": "P1", "icd10_code": "E11.65"}])),
    "ELIG-02": ("A diagnosis code does not exist.", lambda c: c["diagnoses"].append({"patient_id": "P1", "icd10_code": "I10.9"})),
    "IV-01": ("The last visit was two years before CCM began.",
              lambda c: c.__setitem__("encounters", [dict(c["encounters"][0], encounter_date="2023-11-20")])),
    "CP-01": ("No care plan was created yet.", lambda c: c["care_plans"][0].update(created_date="2026-02-05")),
    "CP-02": ("The care plan has no measurable goals.", lambda c: c["care_plans"][0].update(measurable_goals="false")),
    "CP-03": ("The care plan lists no community resources.", lambda c: c["care_plans"][0].update(community_resources="")),
    "CP-04": ("The care plan exists only on paper.", lambda c: c["care_plans"][0].update(electronic="false")),
    "CP-05": ("Nobody gave the patient a copy of the plan.", lambda c: c["care_plans"][0].update(shared_with_patient_date="")),
    "CP-06": ("The plan is two years old and never reviewed.",
              lambda c: c["care_plans"][0].update(created_date="2023-12-01", shared_with_patient_date="2023-12-01")),
    "BILL-01": ("A specialist also billed CCM this month.",
                lambda c: c["claims"].append(claim("C2", "99490", npi=OTHER_NPI, paid=66.13))),
    "BILL-02": ("99490 was billed twice.", lambda c: c["claims"].append(claim("C2", "99490", paid=66.13))),
    "BILL-03": ("The practice also billed home-health supervision (G0181).",
                lambda c: c["claims"].append(claim("C3", "G0181", date="2026-01-15", paid=110))),
    "BILL-04": ("99439 was billed without 99490.",
                lambda c: (_minutes(c, 45), c["claims"].__setitem__(0, claim("C1", "99439", paid=45.93)))),
    "BILL-05": ("The claim was dated the 10th; 20 minutes were reached on the 13th.",
                lambda c: c["claims"][0].update(service_date="2026-01-10")),
    "BILL-06": ("G0506 was billed with no visit that day.", lambda c: c["claims"].append(claim("C4", "G0506", paid=63))),
    "BILL-07": ("A rural health clinic billed G0511 in January 2026, after it was retired.",
                lambda c: c["claims"].__setitem__(0, claim("C1", "G0511", paid=72.90))),
    "BILL-08": ("Medicare denied the 99490 line (paid $0).", lambda c: c["claims"][0].update(paid_amount=0)),
    "TIME-10": ("A rural health clinic billed G0511 in June 2025 with no CCM time on record (from 2024 G0511 may stand for "
                "other care management).", lambda c: _rhc_june_2025(c)),
    "ELIG-03": ("The patient died on 15 December 2025; January's CCM was still billed.",
                lambda c: c["patients"][0].update(death_date="2025-12-15")),
    "DX-01": ("The claim lists only the diabetes code (E11.9), not the hypertension.",
              lambda c: c["claims"][0].update(diagnosis_codes="E11.9")),
    "DOC-01": ("The care plan carries a rubber-stamped signature and no attestation.",
               lambda c: c["care_plans"][0].update(signed_by="Dr. A. Rivera", signed_date="2025-12-01", signature_method="stamp")),
    "DOC-02": ("The nurse signed one of her two time notes.",
               lambda c: (c["time_entries"][0].update(signed_by="S1"), c["time_entries"][1].update(signed_by=""))),
    "SUP-01": ("The nurse's supervising physician is not on record.", lambda c: c["staff"][0].update(supervising_npi="")),
    "REV-01": ("45 minutes were documented, only 99490 billed.", lambda c: _minutes(c, 45)),
}


def _rhc_june_2025(c: dict) -> None:
    """The chart a year and a half earlier, at a rural health clinic billing G0511 for June 2025 with no time logged."""
    c["consents"][0]["consent_date"] = "2024-12-01"
    c["care_plans"][0].update(created_date="2024-12-01", shared_with_patient_date="2024-12-02")
    c["encounters"][0]["encounter_date"] = "2024-11-20"
    c["time_entries"][:] = [dict(e, activity_date="2024-06-" + e["activity_date"][-2:]) for e in c["time_entries"]]
    c["claims"][0] = claim("C1", "G0511", date="2025-06-30", paid=72.90)


def scenario_chart(rule_id: str, on: bool = True, minutes: int | None = None, cost_sharing: bool = True,
                   electronic: bool = True) -> dict:
    """The seed chart with the pitfall applied when ``on``, then the trainee's knobs: ``minutes`` sets the minutes of
    the two clean entries (after the pitfall, so the slider always wins), and the consent and plan switches."""
    if rule_id not in SCENARIOS:
        raise KeyError(f"no training scenario for {rule_id}")
    c = chart()
    if on:
        SCENARIOS[rule_id][1](c)
    if minutes is not None:
        _minutes(c, int(minutes))
    if not cost_sharing:
        c["consents"][0]["informed_cost_sharing"] = ""
    if not electronic:
        c["care_plans"][0]["electronic"] = "false"
    return c


def scenario_minutes(rule_id: str, on: bool = True) -> int:
    """The minutes of the two clean entries in a scenario (what the slider shows when the scenario starts)."""
    c = scenario_chart(rule_id, on)
    return int(sum(float(e["minutes"] or 0) for e in c["time_entries"][:2]))


def verdict(c: dict, period: str | None = None) -> dict:
    """What the rule engine says about a chart: codes billed and supported, money, findings (in the month of its first
    claim, or January 2026)."""
    period = period or (str(c["claims"][0]["service_date"])[:7] if c.get("claims") else "2026-01")
    from ccmlib.synth.examples import practice

    res = audit(practice(c), period=period)
    pm = res.patient_months
    row = pm.iloc[0] if len(pm) else None
    cl = res.claim_lines
    return {"codes_billed": row["codes_billed"] if row is not None else "",
            "codes_supported": row["codes_supported"] if row is not None else "",
            "qualifying_minutes": float(row["qualifying_minutes"]) if row is not None else 0.0,
            "paid": round(float(cl["paid_amount"].fillna(0).sum()), 2), "overpayment": round(float(cl["overpayment"].sum()), 2),
            "missed": round(float(pm["missed_amount"].sum()), 2),
            "supported": bool(len(cl)) and not bool(cl["determination"].isin(["partially_supported", "not_supported"]).any()),
            "findings": res.findings[["rule_id", "severity", "message", "amount"]].to_dict("records")}


def verdict_html(v: dict, rule_id: str | None = None) -> str:
    head = ("<b style='color:#1a7f37'>SUPPORTED</b>" if v["supported"] else "<b style='color:#b2182b'>NOT FULLY SUPPORTED</b>")
    rows = "".join(f"<li><b>{escape(f['rule_id'])}</b> ({escape(f['severity'])}): {escape(str(f['message']))}</li>"
                   for f in v["findings"]) or "<li>no findings</li>"
    rule = load_all().get(rule_id) if rule_id else None
    what = f"<p><i>{escape(rule.id)}: {escape(rule.title)}. {escape(rule.citation)}</i></p>" if rule else ""
    return (f"<div class='ccm-verdict'>{head}: billed {escape(v['codes_billed'] or 'nothing')}, supported "
            f"{escape(v['codes_supported'] or 'nothing')} on {v['qualifying_minutes']:g} qualifying minutes; overpayment "
            f"${v['overpayment']:,.2f}; missed ${v['missed']:,.2f}{what}<ul>{rows}</ul></div>")


QUIZ_COLUMNS = ["answered_at", "trainee", "scenario", "pitfall_on", "minutes", "answer", "correct_answer", "right"]


def default_results_file() -> Path:
    return Path.home() / "ccm-audit-training" / "quiz_results.csv"


def record_answer(path, trainee: str, scenario: str, pitfall_on: bool, minutes: int, answer: str, supported: bool) -> dict:
    """Append one quiz answer to the trainer's CSV (created with its header; flushed to disk at once)."""
    from datetime import datetime, timezone

    from ccmlib.engine.outputs import append_csv_row
    from ccmlib.errors import InputError

    if not str(trainee).strip():
        raise InputError("type your name first (the trainer collects the answers by name)")
    if answer not in ("supported", "not fully supported"):
        raise InputError("choose supported or not fully supported first")
    correct = "supported" if supported else "not fully supported"
    row = {"answered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trainee": str(trainee).strip(),
           "scenario": scenario, "pitfall_on": bool(pitfall_on), "minutes": int(minutes), "answer": answer,
           "correct_answer": correct, "right": answer == correct}
    return append_csv_row(Path(path), QUIZ_COLUMNS, row)


class TrainingApp:
    """Widgets: pick a pitfall (every knob resets to the scenario), switch it on and off, drag the minutes (the verdict
    follows at once), toggle consent and plan; quiz mode records each answer for the trainer."""

    def __init__(self, results_file=None):
        self.results_file = Path(results_file) if results_file else default_results_file()

    def widget(self, rule_id: str = "TIME-06"):
        import ipywidgets as w

        wide = {"description_width": "initial"}
        pick = w.Dropdown(options=[(f"{k}: {v[0]}", k) for k, v in SCENARIOS.items()], value=rule_id, description="Pitfall",
                          style=wide, layout=w.Layout(width="90%"))
        pick.add_class("ccm-pitfall")
        on = w.Checkbox(value=True, description="pitfall on", indent=False)
        on.add_class("ccm-on")
        minutes = w.IntSlider(value=scenario_minutes(rule_id), min=0, max=80, description="minutes logged", style=wide,
                              continuous_update=False)
        minutes.add_class("ccm-minutes")
        cost = w.Checkbox(value=True, description="consent documents cost sharing", indent=False)
        cost.add_class("ccm-cost")
        elec = w.Checkbox(value=True, description="care plan is electronic", indent=False)
        elec.add_class("ccm-electronic")
        quiz = w.Checkbox(value=False, description="quiz mode", indent=False)
        quiz.add_class("ccm-quiz")
        trainee = w.Text(description="Your name", placeholder="for the trainer's results", style=wide)
        trainee.add_class("ccm-trainee")
        answer = w.RadioButtons(options=["supported", "not fully supported"], value=None, description="Your call", style=wide)
        answer.add_class("ccm-answer")
        reveal = w.Button(description="Check my answer", layout=w.Layout(width="auto"))
        reveal.add_class("ccm-reveal")
        out = w.HTML()
        out.add_class("ccm-verdict-box")
        note = w.HTML()
        note.add_class("ccm-note")
        state = {"busy": False}

        def update(_=None):
            if state["busy"]:
                return
            c = scenario_chart(pick.value, on.value, minutes.value, cost.value, elec.value)
            state["v"] = verdict(c)
            answer.value = None
            note.value = ""
            out.value = verdict_html(state["v"], pick.value) if not quiz.value else "<i>Quiz: decide, then check your answer.</i>"

        def reset(_=None):
            """A new scenario, or the pitfall switched: every knob back to the scenario's own chart."""
            state["busy"] = True
            try:
                if _ is not None and getattr(_, "owner", None) is pick:
                    on.value = True
                cost.value, elec.value = True, True
                minutes.value = scenario_minutes(pick.value, on.value)
            finally:
                state["busy"] = False
            update()

        def check(_):
            v = state["v"]
            if answer.value is None:
                note.value = "<b style='color:#b2182b'>Choose supported or not fully supported first.</b>"
                return
            right = (answer.value == "supported") == v["supported"]
            mark = "<b style='color:#1a7f37'>Right.</b> " if right else "<b style='color:#b2182b'>Not quite.</b> "
            out.value = mark + verdict_html(v, pick.value)
            try:
                record_answer(self.results_file, trainee.value, pick.value, on.value, minutes.value, answer.value, v["supported"])
                note.value = f"<i>answer saved for the trainer ({escape(str(self.results_file))})</i>"
            except Exception as exc:  # no name: the answer is shown, not recorded
                note.value = f"<span style='color:#b2182b'>not recorded: {escape(str(exc))}</span>"

        pick.observe(reset, names="value")
        on.observe(reset, names="value")
        for wid in (minutes, cost, elec, quiz):
            wid.observe(update, names="value")
        reveal.on_click(check)
        update()
        return w.VBox([pick, w.HBox([on, minutes]), w.HBox([cost, elec]), w.HBox([quiz, trainee]), w.HBox([answer, reveal]), note, out])


def handout(out, rules=None, progress: bool = False) -> Path:
    """A printable handout of the scenarios (handout.html and handout.pdf in ``out``): for each pitfall what the chart
    shows, the rule and its source, the verdict with and without it, and the fix."""
    from ccmlib.reference.explain import EXPLAIN
    from ccmlib.report.render import assert_inert, to_pdf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cat = load_all()
    items = []
    ids = list(rules or SCENARIOS)
    if progress:
        from tqdm.auto import tqdm
        ids = tqdm(ids, desc="scenarios", unit="scenario", disable=paths.progress_off())
    for rid in ids:
        bad, good = verdict(scenario_chart(rid, on=True)), verdict(scenario_chart(rid, on=False))
        r = cat[rid]
        found = ", ".join(sorted({f"{f['rule_id']} ({f['severity']})" for f in bad["findings"]})) or "none"
        items.append(
            f"<section><h2>{escape(rid)}: {escape(r.title)}</h2><p><b>The chart:</b> {escape(SCENARIOS[rid][0])}</p>"
            f"<p class='ask'>Your call: supported / not fully supported?</p>"
            f"<p><b>Answer:</b> {'supported' if bad['supported'] else 'not fully supported'}; billed "
            f"{escape(bad['codes_billed'] or 'nothing')}, supported {escape(bad['codes_supported'] or 'nothing')}; overpayment "
            f"${bad['overpayment']:,.2f}" + (f"; missed ${bad['missed']:,.2f}" if bad["missed"] else "") + f"; findings: {escape(found)}. "
            f"Without the pitfall: supported {escape(good['codes_supported'] or 'nothing')}, overpayment ${good['overpayment']:,.2f}.</p>"
            f"<p><b>Why:</b> {escape(EXPLAIN[rid][0])}</p><p><b>Fix:</b> {escape(EXPLAIN[rid][1])}</p>"
            f"<p class='src'>{escape(r.citation)}</p></section>")
    html = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'/><title>CCM pitfalls: training handout</title><style>"
            "@page { size: Letter; margin: 16mm; @bottom-right { content: 'Page ' counter(page) ' of ' counter(pages); font-size: 8pt; } }"
            "body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 9.5pt; } h1 { font-size: 16pt; }"
            "h2 { font-size: 11pt; margin: 0 0 4px; } section { border: 1px solid #ccc; padding: 6px 10px; margin: 0 0 8px; break-inside: avoid; }"
            "p { margin: 2px 0; } .src { color: #555; font-size: 8pt; } .ask { color: #1f3b5c; font-style: italic; }</style></head><body>"
            "<h1>Chronic Care Management (CPT 99490): the pitfalls, one chart each</h1><p>Each case is the same textbook chart "
            "(diabetes and hypertension, consent and an electronic care plan in order, 28 minutes, 99490 billed) with one thing "
            "changed. Synthetic data, no real patient. The verdicts are the ccm-audit rule engine's.</p>"
            + "".join(items) + "</body></html>")
    assert_inert(html, "handout.html")
    (out / "handout.html").write_text(html, encoding="utf-8")
    to_pdf(out / "handout.html", out / "handout.pdf")
    return out


def catalog_table() -> pd.DataFrame:
    """Every rule with its training scenario (the notebook lists them)."""
    cat = load_all()
    return pd.DataFrame([{"rule": k, "severity": cat[k].severity, "pitfall": v[0], "rule says": cat[k].title} for k, v in SCENARIOS.items()])
