"""One number, one place (issue 12): the empty period. (The six places agreeing after a decision is checked on the
demo report in tests/test_report.py.)"""


def test_an_empty_period_names_the_months_the_data_covers(tmp_path):
    from chart import chart, write
    from click.testing import CliRunner

    from ccmlib.cli import main
    data = write(chart(), tmp_path / "data")
    r = CliRunner().invoke(main, ["check", str(data), "--out", str(tmp_path / "c"), "--period", "2025Q1", "--quiet"])
    assert r.exit_code == 0 and "no CCM claim lines or time entries in 2025Q1; the data covers 2026-01 to 2026-01" in r.output
    assert (tmp_path / "c" / "findings.csv").is_file()  # empty files written
    r = CliRunner().invoke(main, ["report", str(data), "--out", str(tmp_path / "r"), "--period", "2025Q1"])
    assert r.exit_code == 2 and "the data covers 2026-01 to 2026-01" in r.output and not (tmp_path / "r").exists()
