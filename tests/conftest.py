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


_DEMO_AUDITS: dict = {}


def demo_audit(period: str = "2026Q3"):
    """The demo practice audited for `period` (no sample, no decisions): computed once per test process and handed out as a
    fresh copy each time, so a test may attach a sample, write or change frames without another test seeing it. Only the
    facts (read by the views, never written) are shared."""
    if period not in _DEMO_AUDITS:
        from ccmlib.engine.pipeline import audit
        _DEMO_AUDITS[period] = audit(DEMO, period=period)
    r = _DEMO_AUDITS[period]
    return dataclasses.replace(r, **{f.name: copy.deepcopy(getattr(r, f.name)) for f in dataclasses.fields(r) if f.name != "facts"})


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
