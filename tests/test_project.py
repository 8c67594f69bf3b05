"""Project hygiene: dependencies declared once, templates from the schema, notebooks without outputs."""
import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import yaml

from ccmlib.intake.schema import TABLES
from ccmlib.intake.templates import write_templates

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_pyproject_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = env["dependencies"]
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    lowest = re.search(r">=\s*([\d.]+)", proj["project"]["requires-python"]).group(1)
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, lowest.split(".")))
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-e .[test]"]  # no second dependency list that could drift
    assert not [d for d in deps if isinstance(d, str) and not d.startswith(("python=", "pip"))]


def test_intake_templates_are_current(tmp_path):
    write_templates(tmp_path)
    for name, t in TABLES.items():
        committed = (ROOT / "templates" / "intake" / f"{name}.csv").read_text()
        assert committed == (tmp_path / "intake" / f"{name}.csv").read_text() == ",".join(t.columns) + "\n"
    assert (ROOT / "templates" / "intake" / "README.md").read_text() == (tmp_path / "intake" / "README.md").read_text()
    book = pd.read_excel(ROOT / "templates" / "intake" / "ccm_intake.xlsx", sheet_name=None)
    assert set(book) == set(TABLES) | {"README"}
    for name, t in TABLES.items():
        assert list(book[name].columns) == t.columns


def test_notebooks_are_committed_without_outputs():
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in cells if c["cell_type"] == "code"), nb


def test_readme_opens_with_the_two_commands():
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.strip()]
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
