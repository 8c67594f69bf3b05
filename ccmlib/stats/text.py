"""Plain-text tables for the terminal, in the layout of RAT-STATS printouts."""
from __future__ import annotations


def _money(v) -> str:
    return "" if v is None else f"{v:,.0f}"


def random_numbers_text(r: dict) -> str:
    lines = ["RAT-STATS compatible single-stage random numbers",
             f"Seed: {r['seed']}    AS 183 seeds: {', '.join(map(str, r['wh_seeds']))}",
             f"Frame: {r['frame'][0]} to {r['frame'][1]}    Quantity: {len(r['sequential'])}    Spares: {len(r['spares'])}", "",
             f"{'Order':>7} {'Value':>12}"]
    lines += [f"{o:>7} {v:>12}" for v, o in r["sequential"]]
    if r["spares"]:
        lines += ["", "Spares", f"{'Order':>7} {'Value':>12}"] + [f"{o:>7} {v:>12}" for v, o in r["spares"]]
    lines += ["", f"Sum of all values: {r['sum']:,}"]
    return "\n".join(lines)


def _variable_block(name: str, c: dict, key: str = "t") -> list[str]:
    out = [f"{name.upper()}"]
    if "mean" in c:
        out += [f"  sample size {c['n']}   nonzero {c['nonzero']}   mean {c['mean']:,.2f}   SD {c['sd']:,.2f}",
                f"  SE mean {c['se_mean']:,.2f}   SE total {_money(c['se_total'])}   skewness {c['skewness']:.4f}   kurtosis {c['kurtosis']:.4f}"]
    else:
        out += [f"  sample size {c['n']}   universe {c['universe']}   SE total {_money(c['se_total'])}"]
    out += [f"  point estimate {_money(c['point_estimate'])}",
            f"  {'conf.':>6} {key:>10} {'lower':>16} {'upper':>16} {'precision':>14} {'prec. %':>8}"]
    for lvl in ("80", "90", "95"):
        r = c[lvl]
        out.append(f"  {lvl + ' %':>6} {r[key]:>10.6f} {_money(r['lower']):>16} {_money(r['upper']):>16} {_money(r['precision']):>14} {r['precision_pct']:>8.2f}")
    return out


def variable_text(res: dict) -> str:
    lines = ["Variable appraisal (amounts rounded to whole dollars)"]
    if "columns" in res:
        for name, c in res["columns"].items():
            lines += [""] + _variable_block(name, c)
    else:
        for h, cols in res["strata"].items():
            for name, c in cols.items():
                lines += ["", f"Stratum {h}"] + _variable_block(name, c)
        for name, c in res["overall"].items():
            lines += ["", "Overall (normal Z)"] + _variable_block(name, c, "z")
    lines += ["", "Demand figures: self-disclosure uses the point estimate; OIG CIA reviews the lower limit of the",
              "two-sided 90 % interval; Medicare contractors (PIM ch. 8) the two-sided 80 % lower limit."]
    return "\n".join(lines)


def attribute_text(r: dict) -> str:
    lines = ["Attribute appraisal (exact hypergeometric limits)",
             f"Universe {r['universe']}   sample {r['sample']}   with attribute {r['hits']}",
             f"Point estimate {r['point_estimate'] * 100:.2f} %   projected {r['projected']:,.0f}", "",
             f"  {'conf.':>6} {'lower':>12} {'upper':>12}  sides"]
    for lvl in ("80", "90", "95"):
        x = r[lvl]
        lo = "" if x["lower"] is None else f"{x['lower']:,}"
        up = "" if x["upper"] is None else f"{x['upper']:,}"
        lines.append(f"  {lvl + ' %':>6} {lo:>12} {up:>12}  {'one' if x['one_sided'] else 'two'}")
    return "\n".join(lines)


def sizes_text(r: dict) -> str:
    lines = ["Variable sample size", f"Universe {r['universe']:,}   mean {r['mean']:,.2f}   SD {r['sd']:,.2f}", "",
             f"  {'precision':>9} {'80 %':>8} {'90 %':>8} {'95 %':>8} {'99 %':>8}"]
    for p, row in r["sizes"].items():
        lines.append(f"  {p + ' %':>9} " + " ".join(f"{row[lvl]:>8}" for lvl in ("80", "90", "95", "99")))
    lines += ["", "OIG CIA: a discovery sample of 50; at a net financial error rate of 5 % or more, a full sample",
              "sized for 90 % confidence and 25 % precision."]
    return "\n".join(lines)
