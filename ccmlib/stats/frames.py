"""Sampling frames from an audit's results, and a RAT-STATS draw over them.

The frame is numbered 1..N in a stated, stable order (claim lines by claim_id then line;
patient-months by patient_id then month), so anyone can re-number it and re-draw the same units.
Stratified draws number each stratum 1..N_h on its own and use the seed sequence S, S+1, ... in
stratum order (documented in run.json).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ccmlib.errors import InputError
from ccmlib.stats.ratstats import appraise_variable, demand_figures, parse_seed, random_numbers

FRAME_ORDER = {"claim_lines": ["claim_id", "line"], "patient_months": ["patient_id", "service_month"]}


def build_frame(claim_lines: pd.DataFrame, unit: str = "claim_lines") -> pd.DataFrame:
    """Frame with ``unit`` numbers and examined (paid), audited (paid - overpayment) and difference."""
    cl = claim_lines.assign(paid=claim_lines["paid_amount"].fillna(0.0), over=claim_lines["overpayment"].fillna(0.0))
    if unit == "claim_lines":
        f = cl[["claim_id", "line", "patient_id", "service_month", "billing_npi", "cpt_code", "paid", "over"]]
    elif unit == "patient_months":
        f = cl.groupby(["patient_id", "service_month"], as_index=False).agg(
            billing_npi=("billing_npi", "first"), paid=("paid", "sum"), over=("over", "sum"))
    else:
        raise InputError(f"unknown sampling unit {unit!r} (claim_lines or patient_months)")
    f = f.sort_values(FRAME_ORDER[unit], key=lambda s: s.astype("string") if s.dtype == object or str(s.dtype).startswith(("string", "str")) else s,
                      kind="mergesort").reset_index(drop=True)
    f = f.rename(columns={"paid": "examined"})
    f["audited"] = (f["examined"] - f["over"]).round(2)
    f["difference"] = f["over"].round(2)
    f = f.drop(columns="over")
    f.insert(0, "unit", np.arange(1, len(f) + 1))
    return f


def assign_strata(frame: pd.DataFrame, strata: str | None) -> pd.Series:
    """``practitioner`` (billing NPI) or ``dollars:100,200`` (examined-amount bands); None = one stratum."""
    if not strata:
        return pd.Series("1", index=frame.index)
    if strata == "practitioner":
        return frame["billing_npi"].astype(str)
    if strata.startswith("dollars:"):
        try:
            cuts = sorted(float(c) for c in strata.split(":", 1)[1].split(","))
        except ValueError:
            raise InputError(f"--strata {strata!r}: expected dollars:CUT,CUT like dollars:100,200") from None
        edges = [-np.inf, *cuts, np.inf]
        labels = [f"{i + 1}" for i in range(len(edges) - 1)]
        return pd.cut(frame["examined"], edges, labels=labels, right=False).astype(str)
    raise InputError(f"--strata {strata!r}: use practitioner or dollars:CUT,CUT")


def draw(frame: pd.DataFrame, size: int, seed, spares: int = 0, strata: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Sampled units (with order of selection) and the sample record for run.json."""
    if size < 1:
        raise InputError("--sample must be at least 1")
    if frame.empty:
        raise InputError("the sampling frame is empty: no CCM claim lines in the period")
    text, value = parse_seed(seed)
    frame = frame.assign(stratum=assign_strata(frame, strata))
    groups = sorted(frame["stratum"].unique(), key=lambda s: (len(s), s))
    sizes = frame["stratum"].value_counts()
    if size > len(frame):
        raise InputError(f"--sample {size} is larger than the frame of {len(frame)} units")
    if len(groups) == 1:
        alloc = {groups[0]: size}
    else:  # proportional allocation, at least 2 per stratum (for its SD), largest remainders
        raw = {g: size * sizes[g] / len(frame) for g in groups}
        alloc = {g: min(int(sizes[g]), max(2, int(raw[g]))) for g in groups}
        left = size - sum(alloc.values())
        for g in sorted(groups, key=lambda g: raw[g] - int(raw[g]), reverse=True):
            if left <= 0:
                break
            if alloc[g] < sizes[g]:
                alloc[g] += 1
                left -= 1
    picked, record = [], []
    for i, g in enumerate(groups):
        sub = frame[frame["stratum"] == g].reset_index(drop=True)
        sub["stratum_unit"] = np.arange(1, len(sub) + 1)
        g_seed = text if len(groups) == 1 else repr(value + i)
        n_sp = min(spares, len(sub) - alloc[g])
        rn = random_numbers(g_seed, alloc[g], n_sp, 1, len(sub))
        order = dict((v, o) for v, o in rn.sequential + rn.spares)
        s = sub[sub["stratum_unit"].isin(order)].copy()
        s["order"] = s["stratum_unit"].map(order)
        s["spare"] = s["order"] > alloc[g]
        picked.append(s)
        record.append({"stratum": g, "frame_size": int(len(sub)), "quantity": alloc[g], "spares": n_sp, "seed": g_seed,
                       "wh_seeds": list(rn.wh_seeds), "units": [v for v, _ in rn.sequential], "spare_units": [v for v, _ in rn.spares]})
    sample = pd.concat(picked, ignore_index=True).sort_values(["stratum", "spare", "stratum_unit"], kind="mergesort").reset_index(drop=True)
    info = {"seed": text, "seed_value": value, "strata": strata or None, "seed_sequence": "S, S+1, ... in stratum order" if len(groups) > 1 else None,
            "frame_size": int(len(frame)), "quantity": size, "by_stratum": record}
    return sample, info


def appraise_sample(sample: pd.DataFrame, info: dict) -> dict | None:
    """Appraisal of the sampled units' examined, audited and difference amounts, with the demand figures.

    None when a stratum has fewer than 2 sampled units (no standard deviation)."""
    s = sample[~sample["spare"]]
    universe = {r["stratum"]: r["frame_size"] for r in info["by_stratum"]}
    if s.groupby("stratum").size().min() < 2:
        return None
    vals = s[["stratum", "examined", "audited", "difference"]]
    if len(universe) == 1:
        res = appraise_variable(vals.drop(columns="stratum"), next(iter(universe.values())))
        diff = res["columns"]["difference"]
    else:
        res = appraise_variable(vals, universe)
        diff = res["overall"]["difference"]
        diff = {**diff, "80": {**diff["80"]}, "90": {**diff["90"]}}
    res["demand"] = demand_figures(diff)
    return res
