"""Where ccm-audit's own files are: the notebooks and the report template ship as package data (found through
importlib.resources, so an installed ccm-audit works from any folder); the bundled demo practice exists only in a
source checkout. And what the process runs with: whether to show progress bars, how many cores it may use, and work
in threads (:func:`map_ordered`).

In the source tree the notebooks and the template live at the top level (``notebooks/``, ``templates/report/``) and
reach the package through the symlinks in ``ccmlib/resources/``; a wheel holds copies.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ccmlib.errors import InputError

ROOT = Path(__file__).resolve().parents[1]  # the source checkout, when there is one


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("ccmlib").joinpath("resources", *parts)))


def demo_dir() -> Path:
    p = ROOT / "data" / "demo"
    if not p.is_dir():
        raise InputError(f"the demo practice is not at {p} (it ships with the source checkout, not the package); "
                         f"pass a practice folder (data_dir)")
    return p


def notebook(name: str) -> Path:
    p = _resource("notebooks", name)
    if not p.is_file():
        raise InputError(f"notebook {name} not found in the installed package ({p.parent}); reinstall ccm-audit")
    return p


def template_dir() -> Path:
    """The folder holding the nbconvert template ``report/``."""
    return _resource("templates")
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


def progress_off() -> bool | None:
    """tqdm's ``disable`` for the tool's progress bars: None (tqdm shows a bar only on a terminal, so logs and pipes get no
    carriage returns), False inside a Jupyter kernel (the notebooks show their bars)."""
    import os
    import sys

    if os.environ.get("CCM_AUDIT_QUIET"):  # `--quiet`
        return True
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return False if type(shell).__name__ == "ZMQInteractiveShell" else None


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity where the system has one): the engine's threads (reading the
    tables, the rules, the output files) are two only where there are two."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_ordered(fn, items, threads: int = 1):
    """``fn`` of each item, yielded in the items' order, computed by ``threads`` threads (one: in turn, no pool). The
    first item whose ``fn`` raises raises here, in order, as it would in turn; the items not yet begun are dropped."""
    if threads <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(threads)
    try:
        futures = [pool.submit(fn, item) for item in items]
        for f in futures:
            yield f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
