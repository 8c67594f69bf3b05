"""ccm-audit installed from a wheel (not editable) into a fresh virtual environment renders a report from another folder:
the notebooks and the report template travel as package data."""
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from chart import chart, write

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install_renders_a_report_from_another_folder(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # the dependencies come from the test environment's site-packages (a plain path: its editable finder is not loaded)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
                    "--target", str(site), str(ROOT)], check=True, capture_output=True)  # --target: the running environment is left alone
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.check_output([py, "-c", "import ccmlib; print(ccmlib.__file__)"], cwd=work, text=True).strip()
    assert where.startswith(str(env_dir)), where  # the installed copy, not the source tree
    data = write(chart(), work / "practice")
    # nbconvert's base templates are data files of that dependency, under the test environment's prefix: lend them
    # (and nothing else: no kernelspec, so the kernel is the fresh environment's own python)
    lent = tmp_path / "jupyter"
    lent.mkdir()
    (lent / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    env = dict(os.environ, JUPYTER_PATH=str(lent))
    r = subprocess.run([py, "-m", "ccmlib.cli", "report", "practice", "--period", "2026-01", "--out", "report"],
                       cwd=work, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("report.html", "report.pdf", "workpapers.xlsx", "quarterly_review.ipynb"):
        assert (work / "report" / name).is_file(), name
    assert "Medicare Chronic Care Management compliance review" in (work / "report" / "report.html").read_text()
    assert data.is_dir()
    mine = subprocess.check_output([sys.executable, "-c", "import ccmlib; print(ccmlib.__file__)"], cwd=work, text=True).strip()
    assert mine.startswith(str(ROOT)), mine  # the test environment still runs the source tree
