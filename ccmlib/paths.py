"""Where the bundled demo practice and the notebooks live (a source checkout or an editable install)."""
from __future__ import annotations

from pathlib import Path

from .errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def demo_dir() -> Path:
    p = ROOT / "data" / "demo"
    if not p.is_dir():
        raise InputError(f"the demo practice is not at {p}; pass a practice folder (data_dir)")
    return p


def notebook(name: str) -> Path:
    p = ROOT / "notebooks" / name
    if not p.is_file():
        raise InputError(f"notebook {p} not found (ccm-audit reports run from a source checkout)")
    return p


def template_dir() -> Path:
    return ROOT / "templates"
