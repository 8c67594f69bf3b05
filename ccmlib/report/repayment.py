"""Which overpayment figure a practice repays, by path, from the run's summary (one number, one place).

The paths and their rules are reference data (``ccmlib/reference/repayment_paths.csv``): refund of the identified lines,
an OIG self-disclosure (point estimate, at least 100 sampled units), a Medicare contractor's demand (the lower limit of
the one-sided 90% interval, i.e. the two-sided 80% lower limit) and a Corporate Integrity Agreement claims review (the
two-sided 90% lower limit, 25% precision). Nothing here computes a figure: it chooses among the engine's.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

from ccmlib.errors import InputError
from ccmlib.report.show import money_text as _money


@lru_cache(maxsize=1)
def paths() -> pd.DataFrame:
    with resources.files("ccmlib.reference").joinpath("repayment_paths.csv").open(encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype={"path": str}, keep_default_na=False)


def path_ids() -> list[str]:
    return paths()["path"].tolist()


def default_path(summary: dict) -> str:
    """Without a choice: identified lines for a full review, the point estimate for a sampled one."""
    return "self-disclosure" if summary.get("sampled") else "identified"


def check_path(path: str | None) -> str | None:
    if path is None or path == "":
        return None
    if path not in path_ids():
        raise InputError(f"--path {path!r}: choose one of {', '.join(path_ids())}")
    return path




def figure(summary: dict, path: str) -> float | None:
    """The amount of ``path`` from the summary (None when the run has no such figure, e.g. no sample)."""
    row = paths().set_index("path").loc[path]
    key = "overpayment" if row["figure"] == "identified" else row["figure"]
    v = summary.get(key)
    return None if v is None else float(v)


def warnings(summary: dict, path: str, open_review: bool = True) -> list[str]:
    """What makes the chosen path's figure unfit or unfinished: an open review, too small a sample, too wide a
    precision, a sampled review used as if every line had been read, an appraisal that could not be made."""
    row = paths().set_index("path").loc[path]
    out = []
    sampled = bool(summary.get("sampled"))
    if open_review and sampled and summary.get("sample_undecided"):
        out.append(f"{summary['sample_undecided']} of {summary['sample_size']} sampled units are not yet reviewed against the "
                   f"chart: every figure from the sample is provisional and the report cannot be final.")
    if row["figure"] == "identified" and sampled:
        out.append("The identified lines were screened from the exports; only the sampled units were read against the chart, so a "
                   "refund of the identified lines alone does not cover what the sample projects to the other lines.")
    if row["figure"] != "identified":
        if not sampled:
            out.append(f"The {row['name']} path needs a statistically valid random sample; this review drew none.")
        elif figure(summary, path) is None:
            out.append("The sample could not be appraised (a stratum has fewer than 2 sampled units): no estimate is available.")
        if sampled and row["min_sample"] != "" and summary.get("sample_size", 0) < int(row["min_sample"]):
            out.append(f"The sample has {summary['sample_size']} units; the {row['name']} path asks for at least "
                       f"{int(row['min_sample'])}: a larger sample is needed, or another path applies.")
        prec = summary.get("estimate_precision_90_pct")
        if sampled and row["max_precision_90_pct"] != "" and prec is not None and prec > float(row["max_precision_90_pct"]):
            out.append(f"The estimate's precision at 90% confidence is {prec:.1f}% of the point estimate, wider than the "
                       f"{float(row['max_precision_90_pct']):.0f}% the {row['name']} path asks for: a larger sample is needed.")
    return out


def sentence(summary: dict, path: str) -> str:
    """The one repayment sentence of page 1."""
    row = paths().set_index("path").loc[path]
    amount = figure(summary, path)
    provisional = " (provisional: the chart review of the sample is open)" if summary.get("sampled") and summary.get("sample_undecided") else ""
    unmet = warnings(summary, path, open_review=False)
    if unmet and amount is not None:  # never lead page 1 with a figure the review does not meet the path's terms for
        return (f"Repayment ({row['name']}): no figure yet; this review does not meet the path's terms (below). Section 8 gives "
                f"every path's figure and which of them this review meets.")
    if row["figure"] == "identified":
        lines = summary.get("claim_lines_not_supported", 0)
        screened = "" if summary.get("sampled") else (
            "; the lines come from a screen of the exports, each to be confirmed against the chart before it is refunded")
        return (f"Repayment ({row['name']}): {_money(summary['overpayment'])}{provisional}, the sum of the {lines:,} claim "
                f"line{'s' if lines != 1 else ''} not fully supported{screened}; the path applies when {row['applies']} "
                f"({row['citation']}).")
    if amount is None:
        return f"Repayment ({row['name']}): no figure: the path needs an appraised sample, and this review has none ({row['citation']})."
    what = {"estimate_point": "the point estimate", "estimate_lower_80": "the lower limit of the one-sided 90% interval "
            "(the two-sided 80% lower limit)", "estimate_lower_90": "the lower limit of the two-sided 90% interval"}[row["figure"]]
    return (f"Repayment ({row['name']}): {_money(amount)}{provisional}, {what} projected from the sample to all "
            f"{summary['frame_size']:,} units of the frame ({row['citation']}).")


def sample_table(summary: dict) -> pd.DataFrame:
    """The sample's own results and the estimates, as a two-column table for page 1."""
    if not summary.get("sampled"):
        return pd.DataFrame(columns=["measure", "value"])
    n = summary["sample_size"]
    rows = [("Units in the frame", f"{summary['frame_size']:,}"),
            ("Units sampled (reviewed / open)", f"{n:,} ({n - summary.get('sample_undecided', 0):,} / {summary.get('sample_undecided', 0):,})"),
            ("Sampled units in error", f"{summary['sample_in_error']:,} ({summary['sample_error_rate_count'] * 100:.1f}%; the screen of "
                                       f"every line: {summary.get('error_rate_count', 0) * 100:.1f}%)"),
            ("Paid on the sampled units", _money(summary.get("sample_examined", 0.0))),
            ("Overpayment in the sample", _money(summary.get("sample_overpayment", 0.0)))]
    if "estimate_point" in summary:
        prec = summary.get("estimate_precision_90_pct")
        rows += [("Point estimate (all units)", _money(summary["estimate_point"])),
                 ("Precision at 90% confidence", "" if prec is None else f"{prec:.1f}% of the point estimate"),
                 ("Lower limit, two-sided 90%", _money(summary["estimate_lower_90"])),
                 ("Lower limit, two-sided 80% (one-sided 90%)", _money(summary["estimate_lower_80"]))]
    return pd.DataFrame(rows, columns=["measure", "value"])


def paths_table(summary: dict) -> pd.DataFrame:
    """Every path with its figure, when it applies and its source (section 8)."""
    rows = []
    for r in paths().itertuples():
        v = figure(summary, r.path)
        w = warnings(summary, r.path, open_review=False)
        rows.append({"path": r.name, "repayment": "n/a" if v is None else v, "applies_when": r.applies, "source": r.citation,
                     "terms_met": ("no: " + " ".join(w)) if w else "yes"})
    return pd.DataFrame(rows)
