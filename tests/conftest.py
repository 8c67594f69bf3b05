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
