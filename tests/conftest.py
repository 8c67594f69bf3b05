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


@pytest.fixture
def demo_q3():
    """A private copy of the demo practice's 2026Q3 audit (see :func:`demo_audit`)."""
    return demo_audit("2026Q3")


# The heaviest test files first (measured with --durations on this 2-core machine, December 2026). pyproject.toml runs the
# suite with `--dist loadfile`: each file goes whole to one worker (its module fixtures, such as the rendered demo report,
# computed once), and handing out the long files first keeps both workers busy to the end instead of leaving one file of a
# minute running alone. Files not named here follow in the usual order; the order of the tests inside a file is kept.
HEAVY_FIRST = (
    "test_report.py", "test_browser.py", "test_rules.py", "test_workbench.py", "test_ingest.py", "test_review_decisions.py",
    "test_safety.py", "test_real_exports.py", "test_install.py", "test_prebill.py", "test_synth_chunks.py",
    "test_public_samples.py", "test_synth.py", "test_notebooks.py", "test_profiles.py", "test_catalog_v3_iv.py",
    "test_handout.py", "test_catalog_v2.py", "test_cli.py", "test_batch_parallel.py", "test_sampling.py",
    "test_validate_checks.py", "test_indicators.py", "test_documents.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: each file's own order is kept
