"""On a large practice the tables are read two at a time, the first phase's rules run two at a time in threads, and
the run folder's tables are written while the summary's details are computed (issue #23). The audit is the same as one rule after another (every output
table, the rules' statuses in the catalog's order, work shared through ``Facts.once`` computed once), and the run
folder the same byte for byte."""
from __future__ import annotations

import os
import threading

import pandas as pd
import pytest

from ccmlib.engine import pipeline
from ccmlib.engine.facts import Facts


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    from ccmlib.intake.load import load_practice
    from ccmlib.synth.generator import generate
    out = tmp_path_factory.mktemp("practice") / "p"
    generate(patients=120, months="2026-01..2026-03", seed=11, out=out)
    return load_practice(out)


def _audit(practice, monkeypatch, threads: int):
    monkeypatch.setattr(pipeline, "_rule_threads", lambda facts: threads)
    return pipeline.audit(practice, period="2026Q1")


def test_rules_in_two_threads_give_the_audit_of_one_rule_after_another(practice, monkeypatch):
    used, real = [], pipeline.map_ordered

    def spy(fn, items, threads=1):
        used.append(threads)
        return real(fn, items, threads)

    monkeypatch.setattr(pipeline, "map_ordered", spy)
    one, two = _audit(practice, monkeypatch, 1), _audit(practice, monkeypatch, 2)
    assert used == [1, 2]  # the second audit ran its rules in two threads, the first in turn
    assert len(one.findings) > 50 and one.findings["rule_id"].nunique() > 10  # many rules found something
    for name in ("findings", "claim_lines", "patient_months", "data_quality"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), check_exact=True)
    assert one.run["rules"] == two.run["rules"]
    assert one.run["summary"] == two.run["summary"]


def test_work_shared_by_rules_in_threads_is_computed_once(practice):
    from ccmlib.engine.facts import build_facts
    from ccmlib.engine.periods import parse_period
    facts: Facts = build_facts(practice, parse_period("2026Q1"))
    calls, start = [], threading.Barrier(4)

    def compute():
        calls.append(threading.get_ident())
        return object()

    def ask(out):
        start.wait()
        out.append(facts.once("shared", compute, facts.lines))

    got: list = []
    threads = [threading.Thread(target=ask, args=(got,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 4 and all(g is got[0] for g in got)


def test_threads_only_on_a_large_practice(practice, monkeypatch):
    from ccmlib.engine.facts import build_facts
    from ccmlib.engine.periods import parse_period
    facts = build_facts(practice, parse_period("2026Q1"))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert pipeline._rule_threads(facts) == 1  # a few hundred entries: threads would only cost
    monkeypatch.setattr(pipeline, "PARALLEL_RULES_FROM", len(facts.store))
    assert pipeline._rule_threads(facts) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert pipeline._rule_threads(facts) == 1  # one core: one thread


def test_run_folder_written_in_threads_is_the_one_written_in_turn(practice, monkeypatch, tmp_path):
    import json
    res = pipeline.audit(practice, period="2026Q1")
    pipeline.attach_sample(res, 20, seed=3)
    folders = {}
    for n in (1, 2):
        monkeypatch.setattr(pipeline, "_output_threads", lambda result, n=n: n)
        folders[n] = pipeline.write_outputs(res, tmp_path / f"t{n}")
        res.run["summary"] = {k: v for k, v in res.run["summary"].items() if k not in pipeline.DETAILS}  # computed again
    names = sorted(p.name for p in folders[1].iterdir())
    assert names == sorted(p.name for p in folders[2].iterdir())
    assert {"findings.csv", "claim_lines.csv", "sample.csv", "frame.csv", "run.json"} <= set(names)
    for name in [n for n in names if not n.startswith(".")]:  # the folder's marker records when it was made
        a, b = (folders[1] / name).read_bytes(), (folders[2] / name).read_bytes()
        if name == "run.json":
            a, b = json.loads(a), json.loads(b)
            assert a["summary"]["by_staff"] and a["summary"]["risk_indicators"]  # the details were made in the thread
        assert a == b, name


def _folder_with_bad_rows(tmp_path):
    from ccmlib.synth.generator import generate
    out = tmp_path / "p"
    generate(patients=30, months="2026-01..2026-02", seed=2, out=out)
    for name, col, bad in (("claims", "service_date", "2026-02-31"), ("time_entries", "minutes", "ten"),
                           ("consents", "patient_id", "NOBODY")):
        df = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        df.loc[[1, 3], col] = bad
        df.to_csv(out / f"{name}.csv", index=False)
    return out


def test_tables_read_in_threads_are_the_tables_read_in_turn(tmp_path, monkeypatch):
    from ccmlib.intake import load
    folder = _folder_with_bad_rows(tmp_path)
    monkeypatch.setattr(load, "usable_cores", lambda: 2)
    got = {}
    for n, limit in (("turn", 10 ** 15), ("threads", 0)):
        monkeypatch.setattr(load, "PARALLEL_LOAD_FROM", limit)
        got[n] = load.load_practice(folder)
    turn, threads = got["turn"], got["threads"]
    assert list(turn.tables) == list(threads.tables)
    for name in turn.tables:
        pd.testing.assert_frame_equal(turn.tables[name], threads.tables[name], check_exact=True)
    pd.testing.assert_frame_equal(turn.quality, threads.quality, check_exact=True)
    assert {"claims", "time_entries", "consents"} <= set(turn.quality["table"])  # rows rejected or noted in three tables
    assert turn.inputs == threads.inputs


def test_the_first_unusable_table_is_reported_in_threads_as_in_turn(tmp_path, monkeypatch):
    from ccmlib.errors import InputError
    from ccmlib.intake import load
    folder = _folder_with_bad_rows(tmp_path)
    for name in ("consents", "time_entries"):  # two unusable files: the folder's order names one of them first
        df = pd.read_csv(folder / f"{name}.csv", dtype=str)
        df.drop(columns="patient_id").to_csv(folder / f"{name}.csv", index=False)
    monkeypatch.setattr(load, "usable_cores", lambda: 2)
    said = []
    for limit in (10 ** 15, 0):
        monkeypatch.setattr(load, "PARALLEL_LOAD_FROM", limit)
        with pytest.raises(InputError) as err:
            load.load_practice(folder)
        said.append(str(err.value))
    assert said[0] == said[1] and "patient_id" in said[0]


def test_map_ordered_keeps_the_order_and_raises_the_first_error_in_order():
    import time
    from ccmlib.paths import map_ordered

    def slow_first(i):
        time.sleep(0.05 if i == 0 else 0.0)
        return i * i

    assert list(map_ordered(slow_first, range(6), 2)) == list(map_ordered(slow_first, range(6), 1)) == [0, 1, 4, 9, 16, 25]
    began = []

    def fails(i):
        began.append(i)
        time.sleep(0.02)
        if i in (1, 2):
            raise ValueError(f"item {i}")
        return i

    for threads in (1, 2):
        began.clear()
        with pytest.raises(ValueError, match="item 1"):  # item 2 may fail first in a thread: item 1's error is raised
            list(map_ordered(fails, range(40), threads))
        assert len(began) < 40  # the items not yet begun were dropped
