import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

DEMO = ROOT / "data" / "demo"


@pytest.fixture
def demo_dir() -> Path:
    return DEMO
