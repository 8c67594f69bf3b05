"""Money and the rules on integer keys give what the plain pandas expressions they replaced gave (merge, group-by,
pivot, sort_values, get_dummies, str methods): the replaced expressions are kept here as the oracle and compared frame
for frame on random lines and findings with repeated keys, missing values and every scope."""
import numpy as np
import pandas as pd
import pytest

from ccmlib.engine import money
from ccmlib.engine.facts import PM, natural_key
from ccmlib.engine.money import (ADDON_OF_BASE, BASE_CODES, LINE_KEY, TIMED_CODES, expand_effects, inner_pairs,
                                 joint_codes, key_codes, potential_units, settle_lines, time_family)
from ccmlib.engine.rules.registry import not_documented

CODES = ["99490", "99439", "99487", "99489", "99491", "99437", "G0506", "G0511"]


def _lines(rng, n, n_pat=12):
    pats = [f"P{i:03d}" for i in range(n_pat)]
    claim = rng.integers(0, n // 2 + 1, n)
    df = pd.DataFrame({"claim_id": [f"C{c}" for c in claim], "line": 0})
    df["line"] = df.groupby("claim_id").cumcount() + 1
    df = df.assign(
        patient_id=pd.Categorical(rng.choice(pats, n), categories=pats),
        billing_npi=pd.Series(rng.choice(["111", "222", "333"], n), dtype="string"),
        service_date=pd.to_datetime("2026-01-01") + pd.to_timedelta(rng.integers(0, 80, n), unit="D"),
        cpt_code=pd.Series(rng.choice(CODES, n, p=[.35, .2, .1, .08, .1, .07, .05, .05]), dtype="string"),
        units=rng.integers(1, 4, n).astype("int64"),
        paid_amount=rng.choice([51.85, 0.0, np.nan, 40.1], n))
    df["line"] = df["line"].astype("Int64")
    df["claim_id"] = df["claim_id"].astype("category")
    df["mkey"] = pd.array(df["service_date"].dt.year * 12 + df["service_date"].dt.month - 1, dtype="Int64")
    return df.sample(frac=1, random_state=int(rng.integers(1000))).reset_index(drop=True)


def _findings(rng, lines, n):
    ln = lines.iloc[rng.integers(0, len(lines), n)].reset_index(drop=True)
    scope = rng.choice(["pm", "npi", "line", "entry", "pm_all"], n)
    f = pd.DataFrame({
        "patient_id": ln["patient_id"].astype(object), "mkey": ln["mkey"].astype("int64"), "scope": scope,
        "billing_npi": np.where(np.isin(scope, ["npi", "line"]), ln["billing_npi"].astype(object), None),
        "claim_id": np.where(scope == "line", ln["claim_id"].astype(object), None),
        "line": np.where(scope == "line", ln["line"].astype(object), None),
        "cpt_code": np.where(scope == "line", ln["cpt_code"].astype(object), None),
        "units_removed": np.where(scope == "line", rng.integers(0, 4, n), 0).astype("int64"),
        "severity": rng.choice(["error", "error", "warning"], n),
        "rule_id": rng.choice(["ELIG-01", "CP-01", "BILL-02", "CONS-04"], n),
        "reach": np.where(scope == "entry", rng.choice(["staff", "all", ""], n), None)})
    f.loc[rng.random(n) < 0.05, "patient_id"] = "P999"  # a patient without lines
    return f.assign(fid=rng.permutation(n) + 7)


def _expand_effects_merges(findings, lines):
    """expand_effects as a chain of merges and group-bys (the oracle)."""
    from ccmlib.engine.rules.registry import rule_ids

    err = findings[findings["severity"] == "error"]
    ln = lines[PM + LINE_KEY + ["billing_npi", "cpt_code", "units"]]
    timed = ln["cpt_code"].isin(TIMED_CODES).to_numpy()
    parts = []
    pm = err[err["scope"] == "pm"][["fid", "rule_id", *PM]].merge(ln, on=PM)
    pm = pm[pm["cpt_code"].isin(TIMED_CODES) | pm["rule_id"].isin(rule_ids("takes_every_line"))].drop(columns="rule_id")
    parts.append(pm.assign(units_removed=pm["units"]))
    npi = err[err["scope"] == "npi"][["fid", *PM, "billing_npi"]].merge(ln[timed], on=PM + ["billing_npi"])
    parts.append(npi.assign(units_removed=npi["units"]))
    parts.append(err[err["scope"] == "line"][["fid", *LINE_KEY, "units_removed"]].merge(ln, on=LINE_KEY))
    ent = err[(err["scope"] == "entry") & err["reach"].isin(["staff", "all"])][["fid", "reach", *PM]].merge(ln[timed], on=PM)
    ent = ent[(ent["reach"] == "all") | (ent["cpt_code"].map(time_family) == "staff")].drop(columns="reach")
    parts.append(ent.assign(units_removed=ent["units"]))
    every = err[err["scope"] == "pm_all"][["fid", *PM]].merge(ln, on=PM)
    parts.append(every.assign(units_removed=every["units"]))
    eff = pd.concat(parts, ignore_index=True)[["fid", *PM, *LINE_KEY, "billing_npi", "cpt_code", "units", "units_removed"]]
    base = eff[eff["cpt_code"].isin(BASE_CODES)].groupby(["fid", *PM, "billing_npi", "cpt_code"])["units_removed"].sum().reset_index()
    billed = ln[ln["cpt_code"].isin(BASE_CODES)].groupby([*PM, "billing_npi", "cpt_code"])["units"].sum().rename("billed").reset_index()
    base = base.merge(billed, on=[*PM, "billing_npi", "cpt_code"])
    gone = base[base["units_removed"] >= base["billed"]].assign(addon=lambda d: d["cpt_code"].map(ADDON_OF_BASE))
    casc = gone[["fid", *PM, "billing_npi", "addon"]].merge(ln.rename(columns={"cpt_code": "addon"}), on=[*PM, "billing_npi", "addon"])
    casc = casc.rename(columns={"addon": "cpt_code"}).assign(units_removed=lambda d: d["units"])
    eff = pd.concat([eff, casc[eff.columns]], ignore_index=True)
    eff["units_removed"] = np.minimum(eff["units_removed"].astype("int64"), eff["units"].astype("int64"))
    return eff.groupby(["fid", *LINE_KEY], sort=False, as_index=False).agg(
        {**{c: "first" for c in (*PM, "billing_npi", "cpt_code", "units")}, "units_removed": "max"})


def _as_text(df):
    return df.astype(object).astype(str).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(8))
def test_expand_effects_is_the_chain_of_merges(seed):
    rng = np.random.default_rng(seed)
    lines = _lines(rng, int(rng.integers(1, 400)))
    findings = _findings(rng, lines, int(rng.integers(0, 120)))
    got, want = expand_effects(findings, lines), _expand_effects_merges(findings, lines)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(_as_text(got), _as_text(want))  # the same rows in the same order
    assert got["units_removed"].dtype == want["units_removed"].dtype == "int64"
    assert expand_effects(findings.iloc[:0], lines).empty


def _settle_lines_merges(lines, effects, prices):
    out = lines.copy()
    removed = effects.groupby(LINE_KEY)["units_removed"].max().rename("removed").reset_index()
    out = out.merge(removed, on=LINE_KEY, how="left")
    for c in prices.columns:
        out[c] = prices[c].to_numpy()
    out["units_supported"] = (out["units"] - out["removed"].fillna(0)).clip(lower=0).astype("int64")
    base_ok = out[out["cpt_code"].isin(BASE_CODES)].groupby([*PM, "billing_npi", "cpt_code"])["units_supported"].sum()
    base_ok = base_ok.rename("base_supported").reset_index().assign(cpt_code=lambda d: d["cpt_code"].map(ADDON_OF_BASE))
    out = out.merge(base_ok, on=[*PM, "billing_npi", "cpt_code"], how="left")
    is_addon = out["cpt_code"].isin(ADDON_OF_BASE.values())
    out.loc[is_addon & (out["base_supported"].fillna(0) <= 0), "units_supported"] = 0
    short = out["units"] - out["units_supported"]
    denied = (out["paid_amount"] == 0).fillna(False).to_numpy()
    for col, per_unit in (("overpayment", "unit_value"), ("cost_sharing", "cost_unit"), ("allowed_unsupported", "allowed_unit")):
        out[col] = (short * out[per_unit]).where(short > 0, 0.0).where(~denied, 0.0).round(2)
    out["determination"] = np.select([denied, out["units_supported"] >= out["units"], out["units_supported"] > 0],
                                     ["denied", "supported", "partially_supported"], "not_supported")
    return out.drop(columns=["removed", "base_supported"])


@pytest.mark.parametrize("seed", range(6))
def test_settle_lines_and_prices_are_the_merges(seed):
    from ccmlib.reference import data as refdata

    rng = np.random.default_rng(100 + seed)
    lines = _lines(rng, int(rng.integers(1, 300)))
    lines["service_date"] = lines["service_date"] - pd.DateOffset(years=int(rng.integers(0, 3)))
    lines["place_of_service"] = pd.Series(rng.choice(["11", "21", " 2", None, "22"], len(lines)), dtype="string")
    lines["allowed_amount"] = rng.choice([66.13, np.nan], len(lines))
    fees, _ = refdata.fee_schedule()
    prices = money.unit_values(lines, fees, qp_npis=("222",))
    want_prices = _unit_values_rowwise(lines, fees, ("222",))
    pd.testing.assert_frame_equal(prices, want_prices)
    findings = _findings(rng, lines, int(rng.integers(0, 100)))
    effects = expand_effects(findings, lines)
    got, want = settle_lines(lines, effects, prices), _settle_lines_merges(lines, effects, prices)
    got["claim_id"], want["claim_id"] = got["claim_id"].astype("string"), want["claim_id"].astype("string")
    pd.testing.assert_frame_equal(got, want)


def _unit_values_rowwise(lines, fees, qp_npis):
    """unit_values with the fee looked up row by row (fee_for's merge per line) and the text built by numpy."""
    from ccmlib.reference import data as refdata

    fac = refdata.is_facility(lines["place_of_service"])
    qp = lines["billing_npi"].astype("string").isin(list(qp_npis)).fillna(False).to_numpy()
    left = pd.DataFrame({"code": np.asarray(lines["cpt_code"], dtype=object), "d": lines["service_date"].to_numpy(),
                         "_i": np.arange(len(lines)), "want_qp": qp})
    m = left.merge(fees, on="code")
    m = m[(m["d"] >= m["valid_from"]) & (m["d"] <= m["valid_to"]) & (~m["qualifying_apm"] | m["want_qp"])]
    m = m.sort_values(["_i", "qualifying_apm"], kind="mergesort").drop_duplicates("_i", keep="last")
    fee_amt, cf = np.full(len(lines), np.nan), np.full(len(lines), np.nan)
    i = m["_i"].to_numpy()
    fee_amt[i] = np.where(fac.to_numpy()[i], m["facility_amount"], m["nonfacility_amount"])
    cf[i] = m["conversion_factor"]
    units = lines["units"].to_numpy(dtype=float)
    paid = lines["paid_amount"].to_numpy(dtype=float) / units
    allowed_given = lines["allowed_amount"].to_numpy(dtype=float) / units
    seq = refdata.sequestration_rate(lines["service_date"])
    has_paid, has_fee, has_allowed = ~np.isnan(paid), ~np.isnan(fee_amt), ~np.isnan(allowed_given)
    allowed = np.where(has_allowed, allowed_given, fee_amt)
    value = np.where(has_paid, paid, allowed * 0.8 * (1 - seq))
    cost = np.where(has_paid & has_allowed, np.maximum(allowed_given - paid, 0.0), fee_amt * (1 - 0.8))
    cost = np.where(~has_paid & has_allowed, allowed_given * (1 - 0.8), cost)
    by_fee = ~has_paid & has_fee
    return pd.DataFrame({"unit_value": value, "cost_unit": cost, "allowed_unit": allowed,
                         "price_source": np.select([has_paid, has_fee | has_allowed], ["paid_amount", "fee_schedule"], "unpriced"),
                         "price_basis": np.select([has_paid, has_fee | has_allowed], ["paid", "fee"], "unpriced"),
                         "fee_setting": np.where(by_fee, np.where(fac, "facility", "non-facility"), ""),
                         "conversion_factor": np.where(by_fee, cf, np.nan),
                         "sequestration": np.where(has_paid, np.nan, seq)}, index=lines.index)


def _potential_units_pivot(pm, billed):
    from ccmlib.reference.codes import PFS_TIME_CODES, TIME_RULES, addon_units

    fam = billed.pivot_table(index=PM, columns="cpt_code", values="units", aggfunc="sum", fill_value=0)
    fam = fam.reindex(columns=list(PFS_TIME_CODES), fill_value=0)
    p = pm[PM + ["qualifying_minutes", "practitioner_minutes"]].merge(fam.reset_index(), on=PM, how="left").fillna(0)
    m, pm_ = p["qualifying_minutes"], p["practitioner_minutes"]
    complex_ = p["99487"] > 0
    prac = (p["99491"] > 0) & ~complex_
    staff = ~complex_ & ~prac
    pot = pd.DataFrame({c: 0 for c in fam.columns}, index=p.index)
    for base, who, minutes in (("99490", staff, m), ("99487", complex_, m), ("99491", prac, pm_)):
        pot[base] = np.where(who & (minutes >= TIME_RULES[base][1]), 1, 0)
        pot[ADDON_OF_BASE[base]] = np.where(who, addon_units(minutes, base), 0)
    return pd.concat([p[PM], pot.astype("int64")], axis=1), p[PM + list(fam.columns)].astype({c: "int64" for c in fam.columns})


@pytest.mark.parametrize("seed", range(4))
def test_potential_units_is_the_pivot(seed):
    rng = np.random.default_rng(200 + seed)
    lines = _lines(rng, int(rng.integers(0, 300)))
    pm = lines[PM].drop_duplicates().astype({"mkey": "int64"})
    extra = pd.DataFrame({"patient_id": pd.Categorical(["P000", "P001"], categories=lines["patient_id"].cat.categories),
                          "mkey": [1, 2]})  # months without lines
    pm = pd.concat([pm, extra], ignore_index=True)
    pm["qualifying_minutes"] = rng.choice([0.0, 19.5, 20.0, 41.0, 75.0, np.nan], len(pm))
    pm["practitioner_minutes"] = rng.choice([0.0, 30.0, 61.0, np.nan], len(pm))
    pm.index = pm.index * 3 + 1
    billed = lines[PM + ["cpt_code", "units"]]
    for got, want in zip(potential_units(pm, billed), _potential_units_pivot(pm, billed)):
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_key_codes_and_inner_pairs_are_what_merge_pairs(seed):
    rng = np.random.default_rng(300 + seed)
    vals = ["a", "b", "c", None]
    nl, nr = int(rng.integers(0, 40)), int(rng.integers(0, 40))
    kinds = {
        "cat": lambda n: pd.Categorical(rng.choice(vals, n), categories=["a", "b", "c", "d"]),
        "obj": lambda n: pd.Series(rng.choice(vals + ["e"], n), dtype=object),
        "str": lambda n: pd.Series(rng.choice(vals, n), dtype="string"),
    }
    for lk_, rk_ in (("cat", "cat"), ("obj", "cat"), ("cat", "str"), ("str", "obj"), ("obj", "obj")):
        left = pd.DataFrame({"k": kinds[lk_](nl), "m": rng.integers(0, 3, nl), "a": np.arange(nl)})
        right = pd.DataFrame({"k": kinds[rk_](nr), "m": pd.array(rng.integers(0, 3, nr), dtype="Int64"), "b": np.arange(nr)})
        want = left.merge(right, on=["k", "m"])
        lc, rc = joint_codes({c: key_codes(left[c], right[c]) for c in ("k", "m")}, ["k", "m"])
        li, ri = inner_pairs(lc, rc)
        assert list(want["a"]) == list(li) and list(want["b"]) == list(ri), (lk_, rk_)


@pytest.mark.parametrize("seed", range(3))
def test_not_documented_is_the_text_built_per_row(seed):
    rng = np.random.default_rng(400 + seed)
    els = ["problem_list", "measurable_goals", "informed_cost_sharing"]
    df = pd.DataFrame({f"x_{c}": pd.array(rng.choice([True, False, None], 50), dtype="boolean") for c in els}, index=rng.permutation(50))
    want = pd.Series("", index=df.index, dtype="object")
    for c in els:
        want = want + np.where(df["x_" + c].fillna(False).astype(bool), "", c.replace("informed_", "").replace("_", " ") + ", ")
    pd.testing.assert_series_equal(not_documented(df, "x_", els, drop="informed_"), want.str.rstrip(", "))
    assert not_documented(df.iloc[:0], "x_", els).dtype == object


@pytest.mark.parametrize("seed", range(4))
def test_in_order_is_sort_values(seed):
    from ccmlib.engine.rules.billing import in_order

    rng = np.random.default_rng(500 + seed)
    ln = _lines(rng, int(rng.integers(0, 300)))
    ln["claim_id"] = ln["claim_id"].astype(str).str.replace("C", "C1", regex=False).where(rng.random(len(ln)) < .5, ln["claim_id"].astype(str))
    for by in (("patient_id", "mkey", "service_date"), ("patient_id", "billing_npi", "service_date")):
        want = ln.assign(_claim_order=natural_key(ln["claim_id"]))
        want = want.sort_values([*by, "_claim_order", "line"], kind="mergesort").drop(columns="_claim_order")
        pd.testing.assert_frame_equal(in_order(ln, by), want)
        with_order = ln.assign(_claim_order=natural_key(ln["claim_id"]))
        pd.testing.assert_frame_equal(in_order(with_order, by), with_order.sort_values([*by, "_claim_order", "line"], kind="mergesort"))


def test_diagnosis_lists_split_as_pythons_str_methods_do():
    from ccmlib.engine.rules.eligibility import _split_codes

    rng = np.random.default_rng(7)
    chars = list("ABEIZ019.,; ") + ["\t", "\x0b", "\x1c", "\x1f", "\n", "e", "\u00a0", "ß", "\u2003", "ﬁ", "\x85"]
    for t in range(200):
        pool = chars[:17] if t % 2 else chars  # ASCII lists (Arrow's kernels) and any text (Python's)
        s = pd.Series(["".join(rng.choice(pool, rng.integers(0, 12))) for _ in range(rng.integers(1, 15))]).astype(str)
        split = s.str.upper().str.replace(".", "", regex=False).str.replace(r"[,\s]+", ";", regex=True).str.split(";").explode()
        split = split[split != ""]
        at, each = _split_codes(s)
        assert list(at) == list(split.index) and list(each) == list(split), repr(s.tolist())


def _prefix_join_merges(codes, table):
    uniq = pd.Series(codes.dropna().unique(), dtype="string")
    parts = []
    for n in sorted(table["prefix"].str.len().unique()):
        sub = table[table["prefix"].str.len() == n]
        parts.append(pd.DataFrame({"code": uniq, "prefix": uniq.str.slice(0, n)}).merge(sub, on="prefix"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["code", *table.columns])


@pytest.mark.parametrize("dtype", ["string", "object", "str"])
def test_map_conditions_is_the_merge_per_prefix_length(dtype):
    from ccmlib.reference import data as refdata

    cmap = refdata.condition_map()
    odd = pd.DataFrame({"prefix": ["E11", "", "I1"], "category": ["again", "every", "short"], "category_name": ["a", "e", "s"]})
    pool = sorted(set(cmap["prefix"]) | set(refdata.exclusions()["prefix"]))
    rng = np.random.default_rng(11)
    for t in range(20):
        codes = pd.Series([rng.choice(pool) + "".join(rng.choice(list("0123X"), rng.integers(0, 3)))
                           for _ in range(rng.integers(0, 40))] + [None], dtype=dtype)
        table = cmap if t % 2 else pd.concat([cmap, odd], ignore_index=True)
        hits = _prefix_join_merges(codes, table)
        excluded = set(_prefix_join_merges(codes, refdata.exclusions())["code"])
        want = hits[~hits["code"].isin(excluded)][["code", "category"]].drop_duplicates().reset_index(drop=True)
        pd.testing.assert_frame_equal(refdata.map_conditions(codes, table), want)


@pytest.mark.parametrize("seed", range(4))
def test_revenue_months_among_keys_are_the_left_merge(seed):
    from ccmlib.engine.rules.revenue import _among

    rng = np.random.default_rng(600 + seed)
    cats = [f"P{i}" for i in range(15)]
    pm = pd.DataFrame({"patient_id": pd.Categorical(rng.choice(cats, 60), categories=cats),
                       "mkey": rng.integers(24300, 24310, 60)}).drop_duplicates().reset_index(drop=True)
    for keys in (pd.DataFrame({"patient_id": rng.choice(cats + ["P99", None], 30).astype(object),
                               "mkey": rng.integers(24298, 24312, 30)}),
                 pd.DataFrame({"patient_id": pd.Categorical(rng.choice(cats, 30), categories=cats),
                               "mkey": pd.array(rng.choice([24301, 24305, None], 30), dtype="Int64")}),
                 pm.iloc[:0]):
        want = pm.merge(keys.drop_duplicates().assign(_k=True), on=PM, how="left")["_k"].notna().to_numpy()
        assert list(_among(pm, keys)) == list(want)
