import copy
import dataclasses
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

DEMO = ROOT / "data" / "demo"


@pytest.fixture
def demo_dir() -> Path:
    return DEMO


_DEMO_RUNS: dict = {}


def _fresh(obj):
    """A private copy of a result: frames, dicts and nested results copied; only the facts (read by the views, never
    written) are shared."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: getattr(obj, f.name) if f.name == "facts" else _fresh(getattr(obj, f.name))
                                           for f in dataclasses.fields(obj) if f.init})
    return copy.deepcopy(obj)


def demo_audit(period: str = "2026Q3"):
    """The demo practice audited for `period` (no sample, no decisions): computed once per test process and handed out as a
    fresh copy each time, so a test may attach a sample, write or change frames without another test seeing it."""
    if ("audit", period) not in _DEMO_RUNS:
        from ccmlib.engine.pipeline import audit
        _DEMO_RUNS["audit", period] = audit(DEMO, period=period)
    return _fresh(_DEMO_RUNS["audit", period])


def demo_prebill(month: str, as_of: str | None = None):
    """The demo practice's pre-bill review of `month` (as of `as_of`, default as `prebill` defaults it): computed once per
    test process, a fresh copy each time (as :func:`demo_audit`)."""
    if ("prebill", month, as_of) not in _DEMO_RUNS:
        from ccmlib.engine.prebill import prebill
        _DEMO_RUNS["prebill", month, as_of] = prebill(DEMO, month, as_of=as_of)
    return _fresh(_DEMO_RUNS["prebill", month, as_of])


def run_cli(*args):
    """``python -m ccmlib.cli ARGS`` run inside this test process, as a finished process: its exit code, stdout and
    stderr (``subprocess.CompletedProcess``), without a new Python importing pandas, Arrow, DuckDB and the engine again
    (a second or more of CPU per command). ``sys.argv`` is the one that process would have (run.json and the report's
    provenance record the command from it). An exception the command does not handle is raised in the test, where a
    process would print its traceback and exit 1. Tests of what only a separate process shows keep ``subprocess``:
    a warning printed once per process, a progress bar on a terminal, another environment or working folder, signals."""
    import subprocess

    from click.testing import CliRunner

    import ccmlib.cli
    argv = [str(a) for a in args]
    saved = sys.argv
    sys.argv = [str(Path(ccmlib.cli.__file__)), *argv]
    try:
        r = CliRunner().invoke(ccmlib.cli.main, argv, catch_exceptions=False)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(["ccm-audit", *argv], r.exit_code, r.stdout, r.stderr)


@pytest.fixture
def demo_q3():
    """A private copy of the demo practice's 2026Q3 audit (see :func:`demo_audit`)."""
    return demo_audit("2026Q3")


# The heaviest test files first (CPU seconds of each file run alone on this 2-core machine, December 2026, after issue 23's
# test work; files that wait on servers, kernels or other processes counted by their wall time). pyproject.toml runs the
# suite with `--dist loadfile`: each file goes whole to one worker (its module fixtures, such as the rendered demo report,
# computed once), and handing out the long files first keeps both workers busy to the end instead of leaving one file of a
# minute running alone. Files not named here follow in the usual order; the order of the tests inside a file is kept.
HEAVY_FIRST = (
    "test_rules.py", "test_browser.py", "test_workbench.py", "test_report.py", "test_review_decisions.py", "test_safety.py",
    "test_catalog_v3_iv.py", "test_profiles.py", "test_prebill.py", "test_notebooks.py", "test_ingest.py", "test_handout.py",
    "test_batch_parallel.py", "test_catalog_v2.py", "test_install.py", "test_cli.py", "test_synth_chunks.py", "test_synth.py",
    "test_real_exports.py", "test_indicators.py", "test_documents.py", "test_entry_store.py", "test_public_samples.py",
    "test_validate_checks.py", "test_sampling.py", "test_output_tables.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: each file's own order is kept
