"""The pre-bill worklist as billing staff read it: one page (HTML and PDF) sorted by what to do first, and the run
folder that holds it with prebill.csv (every patient, every column) and run.json."""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pandas as pd

from ccmlib.engine.outputs import RunFolder
from ccmlib.engine.pipeline import _csv
from ccmlib.engine.prebill import Prebill
from ccmlib.report.privacy import engagement_root, load_salt, patient_keys
from ccmlib.report.show import table_html

#: rows on the worklist (about two landscape pages); prebill.csv has them all
PAGE_ROWS = 60
TODO = ("blocked", "needs minutes", "billed with problems", "not enrolled")

CSS = """
@page { size: Letter landscape; margin: 12mm 12mm 14mm 12mm;
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font-size: 7pt; color: #555; }
  @bottom-left { content: "ccm-audit pre-bill review: CONFIDENTIAL"; font-size: 7pt; color: #555; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 8pt; color: #111; }
h1 { font-size: 13pt; margin: 0 0 2px; } p { margin: 2px 0 6px; }
table.ccm-table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 7pt; }
table.ccm-table th, table.ccm-table td { border: 1px solid #ccc; padding: 1px 3px; text-align: left; vertical-align: top; }
table.ccm-table th { background: #eee; }
table.ccm-wide-last td:last-child { width: 45%; }
table.ccm-summary { width: auto; }
tr { break-inside: avoid; }
"""


def worklist_html(pb: Prebill, shown: pd.DataFrame, practice_name: str = "") -> str:
    """The worklist: how many are ready, then what needs action in the order a person can act on it (the pre-bill's
    action order: after month end the claims billed with problems first), the whole list when it fits two pages."""
    todo = shown[shown["status"].isin(TODO)]
    n_ready = int((shown["status"] == "ready to bill").sum())
    top = todo.head(PAGE_ROWS)
    top = top.assign(minutes_needed=top["minutes_needed"].where(top["status"] == "needs minutes"))  # only where minutes are the gap
    more = len(todo) - len(top)
    patient = "patient_id" if "patient_id" in shown else "patient_key"
    title = f"CCM pre-bill review: {practice_name + ', ' if practice_name else ''}{pb.month}, data as of {pb.as_of}"
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>{escape(title)}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             f"<p>{n_ready} patient{'' if n_ready == 1 else 's'} ready to bill (their codes are in prebill.csv, column codes_ready); "
             f"{len(todo)} need{'s' if len(todo) == 1 else ''} action first, listed below in the order to act on them. Only documentation dated on or before {escape(str(pb.as_of))} counts; the "
             f"checks are the ones <code>ccm-audit check</code> runs (rule catalog v{escape(str(pb.run['rule_catalog_version']))}).</p>",
             table_html(pb.by_status(), money=["dollars_at_stake"]).replace('class="ccm-table"', 'class="ccm-table ccm-summary"'),
             table_html(top, columns=[patient, "status", "billing_npi", "qualifying_minutes", "minutes_needed", "days_left",
                                      "dollars_at_stake", "action"], money=["dollars_at_stake"], wide_last=True)]
    if more:
        parts.append(f"<p>{more} more, each with its action, in prebill.csv.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


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
