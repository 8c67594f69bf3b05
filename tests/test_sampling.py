"""RAT-STATS reproduction: published reference figures from sampling.md, exactly."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ccmlib.engine.pipeline import attach_sample, audit
from ccmlib.cli import main
from ccmlib.errors import InputError
from ccmlib.stats.frames import build_frame, draw
from ccmlib.stats.ratstats import (appraise_attribute, appraise_variable, oig_follow_on, random_numbers, sample_sizes,
                             wichmann_hill_seeds)

LOCAL = Path(__file__).parent / "data" / "ratstats-datasrs.csv"


def datasrs() -> pd.DataFrame:
    return pd.read_csv(LOCAL)


def test_users_guide_single_stage_example():
    r = random_numbers("48863.78", 10, 4, 1, 1000)
    assert r.wh_seeds == (22684, 11141, 1666)
    assert r.sequential == [(22, 10), (141, 8), (236, 4), (247, 3), (257, 7), (301, 9), (643, 2), (650, 6), (718, 1), (821, 5)]
    assert r.spares == [(980, 11), (507, 12), (440, 13), (557, 14)]
    assert r.total == 6520


def test_companion_manual_example_1():
    r = random_numbers("12345", 10, 4, 1, 1000)
    assert [v for v, _ in r.sequential] == [9, 236, 337, 340, 346, 497, 556, 641, 658, 884]
    assert [v for v, _ in r.spares] == [404, 624, 927, 947]


def test_seeds_that_map_to_the_same_stream():
    # only the high 32 bits of the double reach the generator: nearby seeds share a stream
    assert wichmann_hill_seeds(48863.78) == wichmann_hill_seeds(48863.78 + 1e-9)
    assert random_numbers("48863.780000001", 10, 0, 1, 1000).sequential == random_numbers("48863.78", 10, 0, 1, 1000).sequential
    assert wichmann_hill_seeds(48863.78) != wichmann_hill_seeds(48864.78)


def test_negative_frame_and_large_frame():
    r = random_numbers(7, 11, 0, -5, 5)
    assert sorted(v for v, _ in r.sequential) == list(range(-5, 6))
    big = random_numbers(99, 10_000, 0, 1, 10_000_000)  # its speed is measured in benchmarks/, not asserted here
    values = [v for v, _ in big.sequential]
    assert len(set(values)) == 10_000 and 1 <= min(values) and max(values) <= 10_000_000


@pytest.mark.parametrize("kw,needle", [
    (dict(seed=1, quantity=11, spares=0, low=1, high=10), "larger than the frame"),
    (dict(seed=1, quantity=1, spares=0, low=5, high=1), "greater than high"),
    (dict(seed="abc", quantity=1, spares=0, low=1, high=10), "not a number"),
])
def test_bad_random_number_input(kw, needle):
    with pytest.raises(InputError, match=needle):
        random_numbers(**kw)


def test_time_of_day_seed_is_reported():
    r = random_numbers(None, 3, 0, 1, 100)
    assert float(r.seed) >= 0 and r.to_json()["seed"] == r.seed


def test_unrestricted_variable_appraisal_companion_example():
    res = appraise_variable(datasrs(), 10_000)["columns"]
    d = res["difference"]
    assert round(d["mean"], 2) == 70.60 and round(d["sd"], 2) == 48.25 and round(d["se_mean"], 2) == 6.81
    assert round(d["se_total"]) == 68_068 and round(d["point_estimate"]) == 706_000
    assert (round(d["90"]["lower"]), round(d["90"]["upper"]), round(d["90"]["precision"])) == (591_881, 820_119, 114_119)
    assert round(d["90"]["precision_pct"], 2) == 16.16
    assert (round(d["80"]["lower"]), round(d["80"]["upper"])) == (617_575, 794_425)
    assert (round(d["95"]["lower"]), round(d["95"]["upper"])) == (569_213, 842_787)
    assert [round(d[k]["t"], 12) for k in ("80", "90", "95")] == [1.299068784748, 1.676550892617, 2.009575237129]
    e = res["examined"]
    assert (round(e["point_estimate"]), round(e["90"]["lower"]), round(e["90"]["upper"])) == (4_960_000, 4_257_823, 5_662_177)


def test_stratified_appraisal_uses_z_and_sums_strata():
    df = datasrs().assign(stratum=["1"] * 25 + ["2"] * 25)
    res = appraise_variable(df, {"1": 5000, "2": 5000})
    s1, s2 = res["strata"]["1"]["difference"], res["strata"]["2"]["difference"]
    o = res["overall"]["difference"]
    assert o["point_estimate"] == pytest.approx(s1["point_estimate"] + s2["point_estimate"])
    var = sum(5000**2 * (5000 - 25) / 5000 * s["sd"] ** 2 / 25 for s in (s1, s2))
    assert o["se_total"] == pytest.approx(var**0.5)
    assert o["90"]["z"] == pytest.approx(1.644853626951, abs=1e-12)
    assert s1["90"]["t"] == pytest.approx(1.710882079909, abs=1e-9)  # t at 24 df


def test_attribute_appraisal_users_guide():
    r = appraise_attribute(10_000, 400, 82)
    assert r["projected"] == 2050 and r["point_estimate"] == 0.205
    assert (r["90"]["lower"], r["90"]["upper"]) == (1729, 2403)
    assert (r["80"]["lower"], r["80"]["upper"]) == (1796, 2326)
    assert (r["95"]["lower"], r["95"]["upper"]) == (1673, 2470)


def test_attribute_zero_hits_is_one_sided():
    r = appraise_attribute(1000, 50, 0)
    assert r["90"]["lower"] is None and r["90"]["one_sided"]
    assert r["90"]["upper"] > 0
    r = appraise_attribute(1000, 50, 50)
    assert r["90"]["upper"] is None


def test_sample_size_table():
    s = sample_sizes(400, 50, 100_000)["sizes"]
    assert [s[p]["90"] for p in ("1", "2", "5", "10")] == [421, 106, 17, 4]


def test_oig_follow_on_rule():
    assert oig_follow_on(0.05)["full_sample_required"] and not oig_follow_on(0.049)["full_sample_required"]


def test_cli_json_contract(tmp_path):
    r = CliRunner().invoke(main, ["sample", "--seed", "48863.78", "--quantity", "10", "--spares", "4", "--low", "1", "--high", "1000", "--json"])
    j = json.loads(r.output)
    assert j["seed"] == "48863.78" and j["wh_seeds"] == [22684, 11141, 1666] and j["sum"] == 6520
    assert j["sequential"][0] == [22, 10] and j["spares"][0] == [980, 11] and j["frame"] == [1, 1000]
    r = CliRunner().invoke(main, ["appraise", "variable", str(LOCAL), "--universe", "10000", "--json"])
    j = json.loads(r.output)
    assert round(j["columns"]["difference"]["90"]["lower"]) == 591_881
    r = CliRunner().invoke(main, ["appraise", "attribute", "--universe", "10000", "--sample", "400", "--hits", "82", "--json"])
    assert json.loads(r.output)["90"] == {"lower": 1729, "upper": 2403, "one_sided": False}
    r = CliRunner().invoke(main, ["sample-size", "variable", "--mean", "400", "--sd", "50", "--universe", "100000", "--json"])
    assert json.loads(r.output)["sizes"]["2"]["90"] == 106
    r = CliRunner().invoke(main, ["sample", "--seed", "48863.78", "--quantity", "10", "--spares", "4", "--low", "1", "--high", "1000"])
    assert "22684" in r.output and "6,520" in r.output


def test_cli_empty_values_file(tmp_path):
    (tmp_path / "v.csv").write_text("examined,audited\n")
    proc = subprocess.run([sys.executable, "-m", "ccmlib.cli", "appraise", "variable", str(tmp_path / "v.csv"), "--universe", "10"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no data rows" in proc.stderr


def test_audit_sample_is_redrawable(tmp_path, demo_dir, demo_q3):
    res = demo_q3
    attach_sample(res, 30, "777", spares=2)
    again = audit(demo_dir, period="2026Q3")  # a second, separate audit of the same data draws the same sample
    attach_sample(again, 30, "777", spares=2)
    pd.testing.assert_frame_equal(res.sample, again.sample)
    # anyone can re-number the frame and re-draw the same units with plain RAT-STATS numbers
    units = sorted(v for v, _ in random_numbers("777", 30, 2, 1, len(res.frame)).sequential)
    assert sorted(res.sample.loc[~res.sample["spare"], "unit"]) == units
    assert res.run["sample"]["frame_size"] == len(res.claim_lines)
    s = res.sample
    assert (s["difference"] == (s["examined"] - s["audited"]).round(2)).all()
    assert res.run["appraisal"]["demand"]["point_estimate"] >= 0


def test_stratified_draw_allocates_every_stratum(demo_q3):
    res = demo_q3
    frame = build_frame(res.claim_lines)
    sample, info = draw(frame, 40, 5, strata="dollars:50,100")
    assert sum(r["quantity"] for r in info["by_stratum"]) == 40
    assert all(r["quantity"] >= 2 for r in info["by_stratum"])
    assert [r["seed"] for r in info["by_stratum"]] == [repr(5.0 + i) for i in range(len(info["by_stratum"]))]
