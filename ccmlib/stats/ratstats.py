"""RAT-STATS-compatible random numbers, variable and attribute appraisal, and sample sizes.

No I/O here: frames and values come in as arrays or DataFrames, results go out as dicts that the
CLI prints or dumps as JSON. Method and reference figures: ``shared/domain/sampling.md``.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from ccmlib.errors import InputError

LEVELS = ("80", "90", "95")
SIZE_LEVELS = ("80", "90", "95", "99")
SIZE_PRECISIONS = ("1", "2", "5", "10", "15", "25")
_VB_A, _VB_C, _VB_M = 1140671485, 12820163, 1 << 24
WH_MODULI = (30269, 30307, 30323)
DEMAND_POLICY = {
    "point_estimate": "self-disclosure (OIG Provider Self-Disclosure Protocol): the point estimate",
    "lower_90_two_sided": "OIG Corporate Integrity Agreement reviews: lower limit of the two-sided 90 % interval",
    "lower_80_two_sided": "Medicare contractors (Program Integrity Manual ch. 8): lower limit of the one-sided 90 % "
                          "interval, which is the two-sided 80 % lower limit",
}


# ----------------------------------------------------------------------------- random numbers
def _vb6_seed_state(seed: float) -> int:
    """VB6 ``Rnd(-1)`` then ``Randomize seed``: the 24-bit generator state."""
    bits = struct.unpack("<I", struct.pack("<f", -1.0))[0]
    x = (bits & 0xFFFFFF) + (bits >> 24)
    x = (x * _VB_A + _VB_C) % _VB_M
    h = struct.unpack("<Q", struct.pack("<d", float(seed)))[0] >> 32
    m = (h & 0xFFFF) ^ (h >> 16)
    return ((m << 8) | (x & 0xFF)) & 0xFFFFFF


def wichmann_hill_seeds(seed: float) -> tuple[int, int, int]:
    """The three AS 183 seeds RAT-STATS derives from a typed seed."""
    x = _vb6_seed_state(seed)
    out = []
    for p in WH_MODULI:
        while True:
            x = (x * _VB_A + _VB_C) % _VB_M
            v = p * x / _VB_M + 1
            if v < p:
                break
        out.append(int(v))
    return tuple(out)


def parse_seed(seed: str | float | None) -> tuple[str, float]:
    """(seed as typed, numeric value). None -> the time of day in seconds, as RAT-STATS does."""
    if seed is None or str(seed).strip() == "":
        now = datetime.now()
        value = round(now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6, 2)
        return f"{value:.2f}", value
    text = str(seed).strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"seed {text!r} is not a number (RAT-STATS seeds are numbers such as 48863.78)") from None
    if not math.isfinite(value):
        raise InputError(f"seed {text!r} is not a finite number")
    return text, value


@dataclass
class RandomNumbers:
    seed: str
    wh_seeds: tuple[int, int, int]
    low: int
    high: int
    sequential: list[tuple[int, int]]  # (value, order of selection), sorted by value
    spares: list[tuple[int, int]]  # in draw order

    @property
    def total(self) -> int:
        return sum(v for v, _ in self.sequential) + sum(v for v, _ in self.spares)

    def to_json(self) -> dict:
        return {"seed": self.seed, "wh_seeds": list(self.wh_seeds), "frame": [self.low, self.high],
                "sequential": [list(p) for p in self.sequential], "spares": [list(p) for p in self.spares], "sum": self.total}


def random_numbers(seed: str | float | None, quantity: int, spares: int = 0, low: int = 1, high: int | None = None) -> RandomNumbers:
    """Single-stage random numbers without replacement, as RAT-STATS draws them."""
    text, value = parse_seed(seed)
    if high is None:
        raise InputError("the frame needs a high value")
    low, high, quantity, spares = int(low), int(high), int(quantity), int(spares)
    if high < low:
        raise InputError(f"frame low {low} is greater than high {high}")
    if quantity < 1 or spares < 0:
        raise InputError("quantity must be at least 1 and spares at least 0")
    size = high - low + 1
    if quantity + spares > size:
        raise InputError(f"quantity {quantity} + spares {spares} is larger than the frame of {size} items ({low}..{high})")
    a, b, c = seeds = wichmann_hill_seeds(value)
    seen: set[int] = set()
    drawn: list[int] = []
    while len(drawn) < quantity + spares:
        a = 171 * (a % 177) - 2 * (a // 177)
        if a <= 0:
            a += 30269
        b = 172 * (b % 176) - 35 * (b // 176)
        if b <= 0:
            b += 30307
        c = 170 * (c % 178) - 63 * (c // 178)
        if c <= 0:
            c += 30323
        u = (a / 30269.0 + b / 30307.0 + c / 30323.0) % 1.0
        v = int(math.floor(u * size)) + low
        if v not in seen:
            seen.add(v)
            drawn.append(v)
    seq = sorted((v, i + 1) for i, v in enumerate(drawn[:quantity]))
    spare = [(v, quantity + i + 1) for i, v in enumerate(drawn[quantity:])]
    return RandomNumbers(text, seeds, low, high, seq, spare)


# ----------------------------------------------------------------------------- variable appraisal
def _moments(x: np.ndarray) -> tuple[float, float]:
    d = x - x.mean()
    m2 = float(np.mean(d**2))
    if m2 == 0:
        return 0.0, 0.0
    return float(np.mean(d**3) / m2**1.5), float(np.mean(d**4) / m2**2)


def appraise_values(values, universe: int) -> dict:
    """Unrestricted variable appraisal of one column of sample values."""
    x = np.asarray(values, dtype="float64")
    n, N = len(x), int(universe)
    if n < 2:
        raise InputError(f"variable appraisal needs at least 2 sample values (got {n})")
    if N < n:
        raise InputError(f"universe size {N} is smaller than the sample size {n}")
    mean = float(x.mean())
    sd = float(x.std(ddof=1))
    se_mean = sd * math.sqrt((N - n) / (n * N))
    se_total = N * se_mean
    point = N * mean
    skew, kurt = _moments(x)
    out = {"n": n, "mean": mean, "sd": sd, "se_mean": se_mean, "se_total": se_total, "point_estimate": point,
           "total": float(x.sum()), "nonzero": int(np.count_nonzero(x)), "skewness": skew, "kurtosis": kurt}
    for lvl in LEVELS:
        t = float(stats.t.ppf(1 - (1 - int(lvl) / 100) / 2, n - 1))
        prec = t * se_total
        out[lvl] = {"t": t, "lower": point - prec, "upper": point + prec, "precision": prec,
                    "precision_pct": prec / point * 100 if point > 0 else 0.0}
    return out


def _columns(df: pd.DataFrame) -> pd.DataFrame:
    cols = {c.strip().lower(): c for c in df.columns}
    have = [c for c in ("examined", "audited", "difference") if c in cols]
    if not have:
        raise InputError("the values file needs a column examined, audited or difference")
    out = pd.DataFrame({c: pd.to_numeric(df[cols[c]], errors="coerce") for c in have})
    bad = out.isna().any(axis=1)
    if bad.any():
        raise InputError(f"values file: non-numeric or blank value on data line(s) {', '.join(str(i + 2) for i in np.flatnonzero(bad)[:10])}")
    if "difference" not in out and {"examined", "audited"} <= set(out):
        out["difference"] = out["examined"] - out["audited"]
    return out


def appraise_variable(df: pd.DataFrame, universe: int | dict) -> dict:
    """Unrestricted (``universe`` an int) or stratified (a ``stratum`` column and a dict of N_h) appraisal."""
    if df is None or len(df) == 0:
        raise InputError("the values file has no data rows")
    strat_col = next((c for c in df.columns if c.strip().lower() == "stratum"), None)
    if not isinstance(universe, dict):
        if strat_col:
            raise InputError("the values file has a stratum column: give --universe per stratum, e.g. 1:5200,2:3500")
        vals = _columns(df)
        return {"columns": {c: appraise_values(vals[c], universe) for c in vals}}
    if not strat_col:
        raise InputError("a universe per stratum needs a stratum column in the values file")
    keys = df[strat_col].astype(str).str.strip()
    missing = sorted(set(keys) - set(universe))
    if missing:
        raise InputError(f"no universe size given for stratum {', '.join(missing)}")
    vals = _columns(df)
    strata = {str(h): {c: appraise_values(vals.loc[keys == h, c], universe[h]) for c in vals}
              for h in sorted(set(keys), key=_natural)}
    overall = {}
    for c in vals:
        point = sum(s[c]["point_estimate"] for s in strata.values())
        var = sum((universe[h] ** 2) * ((universe[h] - s[c]["n"]) / universe[h]) * s[c]["sd"] ** 2 / s[c]["n"] for h, s in strata.items())
        se = math.sqrt(var)
        o = {"point_estimate": point, "se_total": se, "n": sum(s[c]["n"] for s in strata.values()), "universe": sum(universe[h] for h in strata)}
        for lvl in LEVELS:
            z = float(stats.norm.ppf(1 - (1 - int(lvl) / 100) / 2))
            o[lvl] = {"z": z, "lower": point - z * se, "upper": point + z * se, "precision": z * se,
                      "precision_pct": z * se / point * 100 if point > 0 else 0.0}
        overall[c] = o
    return {"strata": strata, "overall": overall}


def _natural(s: str):
    return (0, float(s)) if s.replace(".", "", 1).isdigit() else (1, s)


def demand_figures(column: dict) -> dict:
    """The three figures an overpayment demand may use, with the policy that uses each."""
    return {"point_estimate": column["point_estimate"], "lower_90_two_sided": column["90"]["lower"],
            "lower_80_two_sided": column["80"]["lower"], "precision_90_pct": column["90"].get("precision_pct"),
            "policy": DEMAND_POLICY}


def parse_universe(text: str) -> int | dict:
    """``10000`` or ``1:5200,2:3500``."""
    text = str(text).strip()
    try:
        if ":" not in text:
            n = int(text)
            if n < 1:
                raise ValueError
            return n
        out = {}
        for part in text.split(","):
            k, v = part.split(":")
            out[k.strip()] = int(v)
        return out
    except ValueError:
        raise InputError(f"--universe {text!r}: expected a whole number or stratum:size pairs like 1:5200,2:3500") from None


# ----------------------------------------------------------------------------- attribute appraisal
def _largest(pred, lo: int, hi: int) -> int:
    """Largest k in [lo, hi] with pred(k) true, pred monotone true->false."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest(pred, lo: int, hi: int) -> int:
    """Smallest k in [lo, hi] with pred(k) true, pred monotone false->true."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def appraise_attribute(universe: int, sample: int, hits: int, one_sided: bool = False) -> dict:
    """Exact hypergeometric limits on the number of universe items with the attribute."""
    N, n, x = int(universe), int(sample), int(hits)
    if not (0 < n <= N):
        raise InputError(f"sample size {n} must be between 1 and the universe size {N}")
    if not (0 <= x <= n):
        raise InputError(f"hits {x} must be between 0 and the sample size {n}")
    tol = 1e-9
    out = {"universe": N, "sample": n, "hits": x, "point_estimate": x / n, "projected": N * x / n}
    for lvl in LEVELS:
        conf = int(lvl) / 100
        side = one_sided or x in (0, n)
        T = (1 - conf) if side else (1 - conf) / 2
        upper = None if x == n else _largest(lambda k: stats.hypergeom.cdf(x, N, k, n) > T - tol, x, N - (n - x))
        lower = None if x == 0 else _smallest(lambda k: stats.hypergeom.sf(x - 1, N, k, n) > T - tol, x, N - (n - x))
        out[lvl] = {"lower": lower, "upper": upper, "one_sided": side}
    return out


# ----------------------------------------------------------------------------- sample size
def sample_sizes(mean: float, sd: float, universe: int) -> dict:
    """Variable sample sizes for each precision percent and confidence (from a probe's mean and SD)."""
    N = int(universe)
    if N < 1 or sd < 0 or mean <= 0:
        raise InputError("sample size needs a universe of at least 1, a positive mean and a non-negative SD")
    sizes = {}
    for p in SIZE_PRECISIONS:
        E = int(p) / 100 * mean * N
        row = {}
        for lvl in SIZE_LEVELS:
            z = float(stats.norm.ppf(1 - (1 - int(lvl) / 100) / 2))
            n = (sd * N) ** 2 / ((E / z) ** 2 + N * sd**2)
            row[lvl] = int(math.floor(n + 0.5))
        sizes[p] = row
    return {"mean": mean, "sd": sd, "universe": N, "sizes": sizes}


def oig_follow_on(net_error_rate: float) -> dict:
    """OIG CIA discovery rule: a net financial error rate of 5 % or more calls for a full sample
    sized for 90 % confidence and 25 % precision."""
    return {"net_error_rate": net_error_rate, "full_sample_required": net_error_rate >= 0.05,
            "full_sample_spec": {"confidence": 90, "precision_pct": 25}}
