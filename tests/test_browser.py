"""Real-browser tests: Voila serves the workbench notebooks on 127.0.0.1 and Playwright drives Debian's chromium."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ccmlib.paths import with_parameters

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is not installed: run `make chromium` (Debian package chromium)")
    pytest.skip("chromium not installed (make chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(notebook: Path, log: Path):
    port = free_port()
    voila = Path(sys.executable).with_name("voila")
    proc = subprocess.Popen([str(voila), notebook.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
                            cwd=notebook.parent, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"voila did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_chart_review_decision_reaches_overrides_and_report(tmp_path, browser, demo_dir):
    audit_dir = tmp_path / "audit"
    nb = with_parameters("chart_review.ipynb", {"data_dir": str(demo_dir), "period": "2026Q3", "audit_dir": str(audit_dir)},
                         tmp_path / "chart_review.ipynb")
    proc, url = serve(nb, tmp_path / "voila.log")
    try:
        page = browser.new_page()
        page.goto(url, timeout=180_000)
        page.wait_for_selector(".ccm-reviewer input", timeout=180_000)
        page.fill(".ccm-reviewer input", "Pat Reviewer")
        page.locator(".ccm-reviewer input").press("Tab")
        page.locator(".ccm-decision").first.get_by_text("overturn").click()
        page.locator(".ccm-reason input").first.fill("consent found in the scanned paper chart")
        page.locator(".ccm-reason input").first.press("Tab")
        page.locator(".ccm-save").first.click()
        page.wait_for_selector(".ccm-status:has-text('saved: overturn')", timeout=60_000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = pd.read_csv(audit_dir / "overrides.csv", dtype=str)
    assert list(log[["reviewer", "decision", "reason"]].iloc[0]) == ["Pat Reviewer", "overturn", "consent found in the scanned paper chart"]
    decided = log.iloc[0]

    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "ccmlib.cli", "report", str(demo_dir), "--period", "2026Q3", "--out", str(out),
                           "--overrides", str(audit_dir / "overrides.csv")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    f = pd.read_csv(out / "audit" / "findings.csv", dtype=str, keep_default_na=False)
    hit = f[(f["patient_id"] == decided["patient_id"]) & (f["service_month"] == decided["service_month"]) & (f["rule_id"] == decided["rule_id"])]
    assert set(hit["review_decision"]) == {"overturn"} and set(hit["reviewed_by"]) == {"Pat Reviewer"}
    trail = pd.read_csv(out / "audit" / "overrides_applied.csv", dtype=str)
    assert trail.loc[0, "status"] == "applied" and trail.loc[0, "original_message"] == decided["original_message"]
    assert "1 of them overturning a finding" in (out / "report.html").read_text()


def test_training_widget_flips_the_verdict(tmp_path, browser):
    nb = with_parameters("pitfalls_training.ipynb", {"pitfall": "CP-04"}, tmp_path / "pitfalls_training.ipynb")
    proc, url = serve(nb, tmp_path / "voila.log")
    try:
        page = browser.new_page()
        page.goto(url, timeout=180_000)
        page.wait_for_selector(".ccm-verdict-box:has-text('NOT FULLY SUPPORTED')", timeout=180_000)
        assert "CP-04" in page.locator(".ccm-verdict-box").inner_text()
        page.locator(".ccm-on input").uncheck()
        page.wait_for_selector(".ccm-verdict-box:has-text('SUPPORTED: billed 99490, supported 99490')", timeout=60_000)
        page.locator(".ccm-quiz input").check()
        page.wait_for_selector(".ccm-verdict-box:has-text('Quiz')", timeout=60_000)
        page.locator(".ccm-answer").get_by_text("supported", exact=True).click()
        page.locator(".ccm-reveal").click()
        page.wait_for_selector(".ccm-verdict-box:has-text('Right.')", timeout=60_000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
