"""The package reads as its data flow, and imports only point down it (no engine module imports the report, no
intake module imports the engine)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ccmlib"
#: lowest first; a module may import from its own layer and the layers before it
LAYERS = ["_version", "errors", "paths", "reference", "intake", "stats", "engine", "synth", "report", "workbench", "cli"]


def layer_of(module: str) -> int:
    part = module.split(".")[1] if module.count(".") else ""
    return LAYERS.index(part)


def ccmlib_imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("ccmlib"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if node.module == "ccmlib" else node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ccmlib"):
                    yield alias.name, node.lineno


def test_top_level_reads_as_the_data_flow():
    entries = sorted(p.name for p in PKG.iterdir() if not p.name.startswith(("_", ".")) or p.name == "__init__.py")
    assert entries == ["__init__.py", "cli.py", "engine", "errors.py", "intake", "paths.py", "reference", "report", "resources",
                       "stats", "synth", "workbench"]


def test_imports_only_point_down_the_layers():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if module == "ccmlib":
            continue  # the public face re-exports from every layer
        here = layer_of(module)
        for target, line in ccmlib_imports(path):
            if target == "ccmlib" or layer_of(target) > here:
                bad.append(f"{rel}.py:{line} ({LAYERS[here]}) imports {target}")
    assert not bad, "\n".join(bad)


def test_no_relative_imports():
    rel = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in PKG.rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
           if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not rel, rel
