"""Pitfalls training: one small synthetic chart per rule of the catalog, knobs a trainee can turn,
and the verdict the rule engine gives. The widgets in ``notebooks/pitfalls_training.ipynb`` call
only :func:`scenario_chart`, :func:`controls`, :func:`verdict` and :class:`TrainingApp`; ``ccm-audit handout`` calls
:func:`handout`, which audits every scenario at once (:func:`verdicts`) and renders ``templates/handout/``."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd

from ccmlib import paths
from ccmlib.engine.pipeline import audit
from ccmlib.synth.examples import OTHER_NPI, chart, claim, entry
from ccmlib.engine.rules import load_all

#: the two clean time entries of the seed chart: the ones the minutes knob sets
CLEAN_ENTRIES = ("E1", "E2")


def _month(c: dict) -> str:
    """The month a chart is audited for: the month of its first claim (January 2026 without one)."""
    return str(c["claims"][0]["service_date"])[:7] if c.get("claims") else "2026-01"


def _minutes(c, total: int) -> None:
    """Set the minutes of the two clean entries to ``total`` (15 in the first and the rest in the second, or all in the
    first). With 0 the clean entries go (no CCM time on record); with more than 0 on a chart that has none, they come
    back as in the seed chart, dated in the audited month."""
    total = int(total)
    entries = c["time_entries"]
    if total <= 0:
        entries[:] = [e for e in entries if e["entry_id"] not in CLEAN_ENTRIES]
        return
    have = {e["entry_id"] for e in entries}
    if not set(CLEAN_ENTRIES) <= have:
        month = _month(c)
        seed = [dict(e, activity_date=month + e["activity_date"][7:]) for e in chart()["time_entries"]
                if e["entry_id"] in CLEAN_ENTRIES and e["entry_id"] not in have]
        entries[:0] = seed
    first = min(15, total)
    byid = {e["entry_id"]: e for e in entries}
    byid["E1"].update(minutes=str(first), end_time=f"09:{first:02d}")
    byid["E2"].update(minutes=str(total - first), end_time=f"10:{total - first:02d}" if total - first < 60 else "")


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
    c["time_entries"][:] = []
    c["claims"][0] = claim("C1", "G0511", date="2025-06-30", paid=72.90)


def scenario_chart(rule_id: str, on: bool = True, minutes: int | None = None, cost_sharing: bool | None = None,
                   electronic: bool | None = None) -> dict:
    """The seed chart with the pitfall applied when ``on``, then the trainee's knobs (``None`` leaves the chart as the
    scenario has it): ``minutes`` sets the minutes of the two clean entries (after the pitfall, so the slider always
    wins), ``cost_sharing`` whether the consent documents cost sharing, ``electronic`` whether the care plan is kept
    electronically. ``scenario_chart(r, on, **controls(scenario_chart(r, on)))`` is the scenario's own chart."""
    from ccmlib.errors import InputError

    if rule_id not in SCENARIOS:
        raise KeyError(f"no training scenario for {rule_id}")
    c = chart()
    if on:
        SCENARIOS[rule_id][1](c)
    if minutes is not None:
        _minutes(c, int(minutes))
    if cost_sharing is not None:
        if not c["consents"]:
            raise InputError(f"{rule_id}: the chart has no consent, so it cannot document cost sharing")
        c["consents"][0]["informed_cost_sharing"] = "yes" if cost_sharing else ""
    if electronic is not None:
        if not c["care_plans"]:
            raise InputError(f"{rule_id}: the chart has no care plan to keep electronically")
        c["care_plans"][0]["electronic"] = "true" if electronic else "false"
    return c


def _yes(v) -> bool:
    from ccmlib.intake.validate import TRUE

    return str(v).strip().lower() in TRUE


def controls(c: dict) -> dict:
    """The values of the knobs that show chart ``c`` as it is: ``minutes`` of the two clean entries, whether the
    consent documents cost sharing and whether the care plan is electronic (``None`` when the chart has no consent or
    no care plan: that knob has nothing to act on). Every control of the widget is set from this."""
    return {"minutes": int(sum(float(e["minutes"] or 0) for e in c["time_entries"] if e["entry_id"] in CLEAN_ENTRIES)),
            "cost_sharing": _yes(c["consents"][0]["informed_cost_sharing"]) if c["consents"] else None,
            "electronic": _yes(c["care_plans"][0]["electronic"]) if c["care_plans"] else None}


def scenario_minutes(rule_id: str, on: bool = True) -> int:
    """The minutes of the two clean entries in a scenario (what the slider shows when the scenario starts)."""
    return controls(scenario_chart(rule_id, on))["minutes"]


def _summary(pm: pd.DataFrame, cl: pd.DataFrame, fs: pd.DataFrame) -> dict:
    """A verdict from an audit's patient-months, claim lines and findings (one chart's)."""
    row = pm.iloc[0] if len(pm) else None
    return {"codes_billed": row["codes_billed"] if row is not None else "",
            "codes_supported": row["codes_supported"] if row is not None else "",
            "qualifying_minutes": float(row["qualifying_minutes"]) if row is not None else 0.0,
            "paid": round(float(cl["paid_amount"].fillna(0).sum()), 2), "overpayment": round(float(cl["overpayment"].sum()), 2),
            "missed": round(float(pm["missed_amount"].sum()), 2),
            "supported": bool(len(cl)) and not bool(cl["determination"].isin(["partially_supported", "not_supported"]).any()),
            "findings": fs[["rule_id", "severity", "message", "amount"]].to_dict("records")}


def verdict(c: dict, period: str | None = None) -> dict:
    """What the rule engine says about a chart: codes billed and supported, money, findings (in the month of its first
    claim, or January 2026)."""
    from ccmlib.synth.examples import practice

    res = audit(practice(c), period=period or _month(c))
    return _summary(res.patient_months, res.claim_lines, res.findings)


#: the ids unique across a practice (entry, staff, claim), suffixed per chart in a combined audit; never in the charts
_TAG = "\u00b7k"
_TAGGED = re.compile(re.escape(_TAG) + r"\d+")


def _tagged(c: dict, k: int) -> dict:
    """Chart ``c`` as patient ``k`` of a combined practice: its patient, entry, staff and claim ids suffixed with
    ``k`` so that no two charts share a row (a staff change in one scenario stays in that scenario)."""
    t, tag = copy.deepcopy(c), f"{_TAG}{k}"
    for name, cols in {"patients": ("patient_id",), "diagnoses": ("patient_id",), "consents": ("patient_id",),
                       "care_plans": ("patient_id",), "encounters": ("patient_id",), "staff": ("staff_id",),
                       "time_entries": ("patient_id", "entry_id", "staff_id"), "claims": ("patient_id", "claim_id")}.items():
        for row in t.get(name) or []:
            for col in cols:
                if row.get(col):
                    row[col] = f"{row[col]}{tag}"
    return t


def _practice_wide(c: dict) -> tuple[dict, str]:
    """What the engine takes from a practice as a whole, not per patient, so charts audited together must agree on it:
    the columns of each table (an optional column such as ``death_date`` present switches its rule on; a table with no
    rows has none to disagree on) and where the visit history begins (the earliest visit of the data: IV-01 judges only
    the windows it covers)."""
    from ccmlib.engine.facts import visit_history_start

    columns = {name: tuple(sorted({col for row in rows for col in row})) for name, rows in c.items() if rows}
    enc = pd.DataFrame({"encounter_date": pd.to_datetime([r["encounter_date"] for r in c.get("encounters") or []])})
    cl = pd.DataFrame({"cpt_code": [r["cpt_code"] for r in c.get("claims") or []],
                       "service_date": pd.to_datetime([r["service_date"] for r in c.get("claims") or []])})
    return columns, str(visit_history_start(enc, cl)[0])


def verdicts(charts: dict) -> dict:
    """:func:`verdict` of many charts with a handful of audits, not one per chart: charts that agree on what the engine
    reads from a practice as a whole (:func:`_practice_wide`) become the patients of one practice, kept apart by id,
    audited over their months, and each verdict is read back by its patient and month. Same result as calling
    :func:`verdict` on each (tested for every scenario); identical charts are audited once."""
    from ccmlib.synth.examples import practice

    keyed = {k: json.dumps(c, sort_keys=True) for k, c in charts.items()}
    texts = list(dict.fromkeys(keyed.values()))
    groups: list[tuple[dict, str, list[int]]] = []
    for i, text in enumerate(texts):
        columns, start = _practice_wide(json.loads(text))
        for cols, gstart, ids in groups:
            if gstart == start and all(cols.get(t, v) == v for t, v in columns.items()):
                cols.update(columns)
                ids.append(i)
                break
        else:
            groups.append((dict(columns), start, [i]))
    found: dict[int, dict] = {}
    for _, _, ids in groups:
        charts_ = {i: json.loads(texts[i]) for i in ids}
        tables: dict[str, list] = {}
        for i, c in charts_.items():
            for name, rows in _tagged(c, i).items():
                tables.setdefault(name, []).extend(rows or [])
        months = sorted(_month(c) for c in charts_.values())
        res = audit(practice(tables), start=months[0], end=months[-1])
        parts = [{k: g for k, g in df.groupby([df["patient_id"].astype(str), df["service_month"].astype(str)], sort=False)}
                 for df in (res.patient_months, res.claim_lines, res.findings)]
        empty = [df.iloc[0:0] for df in (res.patient_months, res.claim_lines, res.findings)]
        for i, c in charts_.items():
            key = (f"{c['patients'][0]['patient_id']}{_TAG}{i}", _month(c))
            v = _summary(*[part.get(key, e) for part, e in zip(parts, empty)])
            for f in v["findings"]:
                f["message"] = _TAGGED.sub("", str(f["message"]))
            found[i] = v
    return {k: copy.deepcopy(found[texts.index(text)]) for k, text in keyed.items()}


def _rule(rule_id: str | None) -> dict | None:
    r = load_all().get(rule_id) if rule_id else None
    return {"id": r.id, "title": r.title, "citation": r.citation} if r else None


def verdict_html(v: dict, rule_id: str | None = None, mark: bool | None = None) -> str:
    """The widget's verdict box (``templates/handout/verdict.html.j2``); ``mark`` says whether the trainee's answer
    was right (None: no answer given)."""
    from ccmlib.report.templating import render

    return render("handout/verdict.html.j2", v=v, rule=_rule(rule_id), mark=mark)


def _note(text: str, tone: str = "info") -> str:
    from ccmlib.report.templating import render

    return render("handout/note.html.j2", text=text, tone=tone)


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
    """Widgets: pick a pitfall (every knob is set from the scenario's chart by :func:`controls`), switch it on and off,
    drag the minutes (the verdict follows at once), toggle consent and plan; quiz mode records each answer for the
    trainer. After :meth:`widget`, ``self.controls`` names the widgets (for tests and for a trainer's own layout)."""

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
        minutes = w.IntSlider(value=0, min=0, max=80, description="minutes logged", style=wide, continuous_update=False)
        minutes.add_class("ccm-minutes")
        cost = w.Checkbox(value=False, description="consent documents cost sharing", indent=False)
        cost.add_class("ccm-cost")
        elec = w.Checkbox(value=False, description="care plan is electronic", indent=False)
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

        def knobs():
            """The knobs as scenario_chart takes them: a disabled knob (nothing on the chart to act on) is None."""
            return {"minutes": minutes.value, "cost_sharing": None if cost.disabled else cost.value,
                    "electronic": None if elec.disabled else elec.value}

        def update(_=None):
            if state["busy"]:
                return
            c = scenario_chart(pick.value, on.value, **knobs())
            state["v"] = verdict(c)
            answer.value = None
            note.value = ""
            out.value = verdict_html(state["v"], pick.value) if not quiz.value else _note("Quiz: decide, then check your answer.")

        def reset(_=None):
            """A new scenario, or the pitfall switched: every knob set from the scenario's own chart."""
            if state["busy"]:  # the pitfall switched back on by a new scenario: that reset is under way
                return
            state["busy"] = True
            try:
                if _ is not None and getattr(_, "owner", None) is pick:
                    on.value = True
                set_controls(controls(scenario_chart(pick.value, on.value)))
            finally:
                state["busy"] = False
            update()

        def set_controls(k):
            minutes.max = max(80, k["minutes"])
            minutes.value = k["minutes"]
            for box, value in ((cost, k["cost_sharing"]), (elec, k["electronic"])):
                box.disabled = value is None
                box.value = bool(value)

        def check(_):
            v = state["v"]
            if answer.value is None:
                note.value = _note("Choose supported or not fully supported first.", "bad")
                return
            right = (answer.value == "supported") == v["supported"]
            out.value = verdict_html(v, pick.value, mark=right)
            try:
                record_answer(self.results_file, trainee.value, pick.value, on.value, minutes.value, answer.value, v["supported"])
                note.value = _note(f"answer saved for the trainer ({self.results_file})")
            except Exception as exc:  # no name: the answer is shown, not recorded
                note.value = _note(f"not recorded: {exc}", "bad")

        pick.observe(reset, names="value")
        on.observe(reset, names="value")
        for wid in (minutes, cost, elec, quiz):
            wid.observe(update, names="value")
        reveal.on_click(check)
        reset()
        self.controls = {"pick": pick, "on": on, "minutes": minutes, "cost_sharing": cost, "electronic": elec, "quiz": quiz,
                         "verdict": out}
        return w.VBox([pick, w.HBox([on, minutes]), w.HBox([cost, elec]), w.HBox([quiz, trainee]), w.HBox([answer, reveal]), note, out])


#: how the handout names a row of each table of a chart, and the columns that identify it (none: its position)
_ROWS = {"patients": ("patient", ("patient_id",)), "diagnoses": ("diagnosis", ("icd10_code",)), "consents": ("consent", ()),
         "care_plans": ("care plan", ("plan_id",)), "staff": ("staff member", ("staff_id",)),
         "time_entries": ("time entry", ("entry_id",)), "claims": ("claim", ("claim_id", "line")),
         "encounters": ("visit", ())}


def chart_changes(before: dict, after: dict) -> list[dict]:
    """What differs between two charts, row by row: ``{"row": "time entry E3", "change": "added" | "removed" |
    "changed", "fields": [{"field", "before", "after"}]}`` (an added row lists its filled fields but the patient id, the
    same on every row, and the row's own id, in its name)."""
    out = []
    for name, (label, key) in _ROWS.items():
        def keyed(rows):
            return {(tuple(str(r.get(k, "")) for k in key) if key else (str(i + 1),)): r for i, r in enumerate(rows or [])}

        old, new = keyed(before.get(name)), keyed(after.get(name))
        for k in list(old) + [k for k in new if k not in old]:
            row = f"{label} {' line '.join(k)}"
            a, b = old.get(k), new.get(k)
            if a is None:
                fields = [{"field": f, "before": "", "after": str(v)} for f, v in b.items()
                          if str(v) != "" and f != "patient_id" and f not in key]
                out.append({"row": row, "change": "added", "fields": fields})
            elif b is None:
                out.append({"row": row, "change": "removed", "fields": []})
            else:
                fields = [{"field": f, "before": str(a.get(f, "")), "after": str(b.get(f, ""))} for f in dict.fromkeys([*a, *b])
                          if str(a.get(f, "")) != str(b.get(f, ""))]
                if fields:
                    out.append({"row": row, "change": "changed", "fields": fields})
    return out


def _billed(c: dict) -> list[dict]:
    return [{"code": r["cpt_code"], "units": int(float(r["units"] or 1)), "date": r["service_date"], "npi": r["billing_npi"],
             "paid": float(r["paid_amount"]) if str(r.get("paid_amount", "")) != "" else None} for r in c["claims"]]


def _seed(c: dict) -> list[dict]:
    """The seed chart in a few lines (what every case starts from), from its data."""
    con, plan = c["consents"][0], c["care_plans"][0]
    staff = {r["staff_id"]: r["role"] for r in c["staff"]}
    told = [k.removeprefix("informed_").replace("_", " ") for k in con if k.startswith("informed_") and _yes(con[k])]
    return [
        {"what": "Diagnoses", "detail": ", ".join(r["icd10_code"] for r in c["diagnoses"])},
        {"what": "Consent", "detail": f"{con['consent_date']}, {con['method']}, for NPI {con['practitioner_npi']}; the patient "
                                      f"was told of: {', '.join(told)}"},
        {"what": "Care plan", "detail": f"{plan['plan_id']} created {plan['created_date']}, "
                                        f"{'electronic' if _yes(plan['electronic']) else 'on paper'}, given to the patient "
                                        f"{plan['shared_with_patient_date']}, every required element present"},
        {"what": "Last visit", "detail": "; ".join(f"{r['encounter_date']} ({r['cpt_code']})" for r in c["encounters"])},
        {"what": "Time log", "detail": "; ".join(f"{e['entry_id']} {e['activity_date']} {e['start_time']}-{e['end_time']}, "
                                                 f"{e['minutes']} min by {e['staff_id']} ({staff.get(e['staff_id'], '?')}): "
                                                 f"{e['description']}" for e in c["time_entries"])},
        {"what": "Billed", "detail": "; ".join(f"{r['cpt_code']} x {r['units']} on {r['service_date']} by NPI {r['billing_npi']}, "
                                               f"paid ${float(r['paid_amount']):,.2f}" for r in c["claims"])},
    ]


def handout_data(rules=None, progress: bool = False) -> dict:
    """Everything the handout and its answer key show, as data: per scenario (numbered as a case) the situation, what
    changed from the seed chart, what was billed, the engine's verdict with and without the pitfall, why and the fix.
    Every scenario's charts are audited together (:func:`verdicts`)."""
    from ccmlib.engine.rules.explain import EXPLAIN

    ids = list(rules or SCENARIOS)
    unknown = [r for r in ids if r not in SCENARIOS]
    if unknown:
        raise KeyError(f"no training scenario for {', '.join(unknown)}")
    charts = {(rid, on): scenario_chart(rid, on) for rid in ids for on in (True, False)}
    if progress:
        from tqdm.auto import tqdm
        with tqdm(total=1, desc="auditing the scenarios", unit="audit", disable=paths.progress_off()) as bar:
            vs = verdicts(charts)
            bar.update()
    else:
        vs = verdicts(charts)
    seed = chart()
    cases = []
    for n, rid in enumerate(ids, 1):
        v = vs[(rid, True)]
        cases.append({"number": n, "rule": _rule(rid), "situation": SCENARIOS[rid][0],
                      "changes": chart_changes(seed, charts[(rid, True)]), "billed": _billed(charts[(rid, True)]),
                      "verdict": v, "answer": "supported" if v["supported"] else "not fully supported",
                      "without": vs[(rid, False)], "why": EXPLAIN[rid][0], "fix": EXPLAIN[rid][1]})
    key = pd.DataFrame([{"case": c["number"], "rule": c["rule"]["id"], "answer": c["answer"], "overpayment": c["verdict"]["overpayment"]}
                        for c in cases], columns=["case", "rule", "answer", "overpayment"])
    half = (len(key) + 1) // 2  # the answers at a glance, in two columns side by side
    return {"cases": cases, "seed": _seed(seed), "key": [key.iloc[:half], key.iloc[half:]] if len(key) > 12 else [key]}


def handout(out, rules=None, progress: bool = False) -> Path:
    """A printable handout for a class, in ``out``: ``handout.html``/``.pdf`` with the questions only (each case's
    chart, no verdict) and ``answer_key.html``/``.pdf`` with the engine's verdict, why and the fix per case. Rendered
    from ``templates/handout/`` (Python builds the data, the templates the HTML)."""
    from ccmlib.report.render import assert_inert, to_pdf
    from ccmlib.report.templating import render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = handout_data(rules, progress)
    for name in ("handout", "answer_key"):
        html = render(f"handout/{name}.html.j2", **data)
        assert_inert(html, f"{name}.html")
        (out / f"{name}.html").write_text(html, encoding="utf-8")
        to_pdf(out / f"{name}.html", out / f"{name}.pdf")
    return out


def catalog_table() -> pd.DataFrame:
    """Every rule with its training scenario (the notebook lists them)."""
    cat = load_all()
    return pd.DataFrame([{"rule": k, "severity": cat[k].severity, "pitfall": v[0], "rule says": cat[k].title} for k, v in SCENARIOS.items()])
