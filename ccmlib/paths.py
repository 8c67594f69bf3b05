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


def with_parameters(name: str, params: dict, out: Path) -> Path:
    """A copy of a bundled notebook with an ``injected-parameters`` cell after its parameters cell, as papermill
    would write it, without executing it (for Voila or JupyterLab sessions)."""
    import nbformat

    nb = nbformat.read(str(notebook(name)), as_version=4)
    idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    cell = nbformat.v4.new_code_cell("# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(idx + 1, cell)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out
