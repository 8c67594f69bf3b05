"""The pre-bill worklist as billing staff read it: at most two pages (HTML and PDF, laid out by
``templates/worklist/``) sorted by what to do first, and the run
folder that holds it with prebill.csv (every patient, every column) and run.json."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ccmlib.engine.outputs import RunFolder
from ccmlib.engine.pipeline import _csv
from ccmlib.engine.prebill import Prebill
from ccmlib.report.privacy import engagement_root, load_salt, patient_keys

#: rows on the worklist (about two landscape pages); prebill.csv has them all
PAGE_ROWS = 60
#: what fits two landscape pages below the header, in lines of the list's type: a row costs the lines its corrective
#: action wraps to (about ACTION_CHARS characters a line in the template's action column) and a little padding
ACTION_CHARS = 100
ROW_PADDING = 0.2
PAGE_LINES = 96
TODO = ("blocked", "needs minutes", "billed with problems", "not enrolled")


def profile_name(run: dict) -> str:
    """The audit profile a run names (catalog v3 profiles: a name, or a dict with its name), '' when it names none."""
    prof = run.get("profile")
    if isinstance(prof, dict):
        prof = prof.get("name") or ""
    return "" if prof is None else str(prof)


def fits_two_pages(todo: pd.DataFrame) -> pd.DataFrame:
    """The first rows of ``todo`` that fit two pages (at most PAGE_ROWS): after month end the corrective actions of
    claims billed with problems wrap over several lines, so fewer of them fit than of one-line rows."""
    lines = todo["action"].fillna("").astype(str).str.len().floordiv(ACTION_CHARS).add(1)
    fits = (lines + ROW_PADDING).cumsum().to_numpy() <= PAGE_LINES
    return todo[fits].head(PAGE_ROWS)


def worklist_data(pb: Prebill, shown: pd.DataFrame, practice_name: str = "") -> dict:
    """What the worklist shows (data only; ``templates/worklist/worklist.html.j2`` lays it out): how many are ready,
    then what needs action in the order a person can act on it (the pre-bill's action order: after month end the claims
    billed with problems first), the whole list when it fits two pages (PAGE_ROWS)."""
    todo = shown[shown["status"].isin(TODO)]
    top = fits_two_pages(todo)
    top = top.assign(minutes_needed=top["minutes_needed"].where(top["status"] == "needs minutes"))  # only where minutes are the gap
    days_left = int(shown["days_left"].iloc[0]) if len(shown) else 0
    closed = days_left <= 0
    patient = "patient_id" if "patient_id" in shown else "patient_key"
    columns = [patient, "status", "billing_npi", "qualifying_minutes", "minutes_needed", "days_left", "dollars_at_stake", "action"]
    if closed:
        columns.remove("days_left")  # 0 on every row once the month has ended; the header says so
    return {"title": f"CCM pre-bill review: {practice_name + ', ' if practice_name else ''}{pb.month}, data as of {pb.as_of}",
            "n_ready": int((shown["status"] == "ready to bill").sum()), "n_todo": int(len(todo)), "more": int(len(todo) - len(top)),
            "closed": closed, "days_left": days_left, "as_of": str(pb.as_of), "catalog_version": str(pb.run["rule_catalog_version"]),
            "profile": profile_name(pb.run), "by_status": pb.by_status(), "rows": top, "columns": columns}


def worklist_html(pb: Prebill, shown: pd.DataFrame, practice_name: str = "") -> str:
    """The worklist as HTML (see :func:`worklist_data`), through the one rendering route."""
    from ccmlib.report.templating import render

    return render("worklist/worklist.html.j2", **worklist_data(pb, shown, practice_name))


def write_prebill(pb: Prebill, out, show_identifiers: bool = False, practice_name: str = "", salt_root=None) -> Path:
    """Write ``out``: prebill.csv (patient ids: the practice's own worklist data, like a check run folder),
    worklist.html and worklist.pdf (pseudonymous keys unless ``show_identifiers``), crosswalk.csv and run.json, staged and
    moved into place whole (a prebill run folder, see :mod:`ccmlib.engine.outputs`)."""
    from ccmlib.report.render import assert_inert, to_pdf

    rf = out if isinstance(out, RunFolder) else RunFolder(out, "prebill")
    out = rf.path
    with rf:
        stage = rf.stage()
        with open(stage / "prebill.csv", "w", encoding="utf-8", newline="") as fh:
            fh.write(_csv(pb.worklist))
        shown = pb.worklist
        if not show_identifiers:
            salt = load_salt(Path(salt_root) if salt_root else engagement_root(out))  # the reports' salt: the same keys
            keys = patient_keys(shown["patient_id"], salt, practice_name or "")
            with open(stage / "crosswalk.csv", "w", encoding="utf-8", newline="") as fh:
                fh.write(_csv(pd.DataFrame({"patient_key": keys, "patient_id": shown["patient_id"]}).sort_values("patient_key")))
            shown = shown.assign(patient_id=keys).rename(columns={"patient_id": "patient_key"})
        html = worklist_html(pb, shown, practice_name)
        assert_inert(html, "worklist.html")
        (stage / "worklist.html").write_text(html, encoding="utf-8")
        to_pdf(stage / "worklist.html", stage / "worklist.pdf")
        with open(stage / "run.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(pb.run, indent=2, default=str) + "\n")
        rf.publish(stage)
    return out
