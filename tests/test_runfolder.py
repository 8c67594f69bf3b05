"""A run folder read back (what `ccm-audit render` renders from) holds what the engine wrote: written again, every file
is byte-identical; a hand-edited value names its file, line and column."""
import filecmp

import pytest

from conftest import demo_audit

from ccmlib.engine.pipeline import attach_sample, write_outputs
from ccmlib.engine.runfolder import read_outputs
from ccmlib.errors import InputError


def test_read_back_and_written_again_byte_for_byte(tmp_path):
    r = attach_sample(demo_audit("2026Q3"), 20, "1")
    write_outputs(r, tmp_path / "a")
    back = read_outputs(tmp_path / "a")
    write_outputs(back, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.suffix in (".csv", ".json"))
    assert "sample.csv" in names and all(filecmp.cmp(tmp_path / "a" / n, tmp_path / "b" / n, shallow=False) for n in names)
    assert str(back.claim_lines["line"].dtype) == "int64" and back.sample["spare"].dtype == bool


def test_an_edited_value_names_file_line_and_column(tmp_path):
    write_outputs(demo_audit("2026Q3"), tmp_path / "a")
    f = tmp_path / "a" / "claim_lines.csv"
    lines = f.read_text().splitlines()
    head = lines[0].split(",")
    row = lines[3].split(",")
    row[head.index("units_billed")] = "1.5"
    lines[3] = ",".join(row)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"claim_lines.csv, line 4, column units_billed: '1.5'"):
        read_outputs(tmp_path / "a")
    with pytest.raises(InputError, match="not an audit folder"):
        read_outputs(tmp_path)
