"""Real-browser tests: Voila serves the workbench notebooks on 127.0.0.1 and Playwright drives Debian's chromium."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from ccmlib.paths import with_parameters

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is not installed: run `make chromium` (Debian package chromium)")
    pytest.skip("chromium not installed (make chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


PICKED = "document.querySelector('.ccm-pick select').selectedOptions[0].text.replace(/\\u00a0/g, ' ')"  # the chosen queue entry


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


def test_review_of_an_audit_folder_reaches_the_report(tmp_path, browser, demo_dir):
    """`ccm-audit review AUDIT_DIR` on a sampled audit: one overturn (with reason and evidence), one accept (no reason),
    a re-run that keeps the reviewer on the same patient-month, and the decision in `ccm-audit report`'s headline."""
    audit_dir = tmp_path / "audit"
    shots = Path(os.environ.get("CCM_SCREENSHOTS", tmp_path))  # set it to keep the screenshots and look at them
    shots.mkdir(parents=True, exist_ok=True)
    r = run_cli("check", demo_dir, "--period", "2026Q3", "--out", audit_dir, "--sample", "30", "--seed", "7", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    port = free_port()
    log = tmp_path / "review.log"
    proc = subprocess.Popen([sys.executable, "-m", "ccmlib.cli", "review", str(audit_dir), "--port", str(port), "--reviewer",
                             "Pat Reviewer"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
        page.wait_for_selector(".ccm-pick select", timeout=180_000)
        first = page.locator(".ccm-pick select").input_value()
        assert "[sample]" in page.locator(".ccm-pick select option").first.inner_text()
        assert "undecided" in page.locator(".ccm-pick select option").first.inner_text()
        # nothing is chosen until the reviewer chooses: saving now is refused
        page.locator(".ccm-save").first.click()
        page.wait_for_selector(".ccm-status:has-text('choose accept or overturn')", timeout=60_000)
        # an overturn without a reason is refused, with one it is saved
        page.locator(".ccm-decision").first.get_by_text("overturn").click()
        page.locator(".ccm-save").first.click()
        page.wait_for_selector(".ccm-status:has-text('an overturn needs a reason')", timeout=60_000)
        page.locator(".ccm-reason input").first.fill("consent found in the scanned paper chart")
        page.locator(".ccm-evidence input").first.fill("scanned consent, page 2")
        page.locator(".ccm-evidence input").first.press("Tab")
        page.locator(".ccm-save").first.click()
        page.wait_for_selector(".ccm-status:has-text('saved: overturn')", timeout=60_000)
        # the decision shows at once, without a re-run
        page.wait_for_selector(".ccm-decided:has-text('overturn by Pat Reviewer')", timeout=60_000)
        if page.locator(".ccm-decision").count() > 1:  # an accept needs no reason
            page.locator(".ccm-decision").nth(1).get_by_text("accept").click()
            page.locator(".ccm-save").nth(1).click()
            page.wait_for_selector(".ccm-status:has-text('saved: accept')", timeout=60_000)
        # whatever is still open on this page: one click, one confirm per unit; the page's patient-month is then decided
        page.locator(".ccm-confirm-all").click()
        page.wait_for_selector(".ccm-status:has-text('saved: confirm for')", timeout=60_000)
        page.wait_for_function(f"{PICKED}.includes(' - decided')", timeout=60_000)  # ipywidgets writes spaces as no-break spaces
        assert page.locator(".ccm-pick select").input_value().split(":")[0] == first.split(":")[0]
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.screenshot(path=str(shots / "review-decided.png"), full_page=True)
        # next undecided: another sampled patient-month, still open
        page.locator(".ccm-next").click()
        page.wait_for_function(f"{PICKED}.split(':')[0] !== {first.split(':')[0].replace(chr(160), ' ')!r}", timeout=60_000)
        nxt = page.evaluate(PICKED)
        assert "[sample]" in nxt and " - undecided" in nxt
        page.wait_for_selector(f".ccm-view h3:has-text('{nxt.split()[1]}')", timeout=60_000)  # the page is redrawn for it
        nxt_month = re.search(r"\d{4}-\d{2}", nxt).group(0)
        page.wait_for_selector(f".ccm-add-for:has-text('{nxt.split()[1]} {nxt_month}')", timeout=60_000)  # its add form too
        # add a defect the chart shows: refused without evidence, saved with it (the audit re-runs)
        page.locator(".ccm-add-description input").fill("time note cloned from the previous month")
        page.locator(".ccm-add-reason input").fill("same text and minutes as June")
        page.locator(".ccm-add").click()
        page.wait_for_selector(".ccm-status:has-text('an add needs the evidence')", timeout=60_000)
        page.locator(".ccm-add-evidence input").fill("progress notes, page 4")
        page.locator(".ccm-add-evidence input").press("Tab")
        page.locator(".ccm-add").click()
        page.wait_for_selector(".ccm-status:has-text('saved: add CHART')", timeout=120_000)
        page.wait_for_selector(".ccm-unit:has-text('add 1')", timeout=60_000)
        page.wait_for_selector(".ccm-decided:has-text('add by Pat Reviewer')", timeout=60_000)
        # back on the first page, the saved reason and evidence are in the form
        back = page.evaluate("([...document.querySelectorAll('.ccm-pick select option')].findIndex(o => o.text.replace(/\\u00a0/g, ' ')"
                             f".split(':')[0] === {first.split(':')[0].replace(chr(160), ' ')!r}))")
        assert back >= 0
        page.locator(".ccm-pick select").select_option(index=back)
        page.wait_for_function("document.querySelector('.ccm-reason input') && document.querySelector('.ccm-reason input').value === "
                               "'consent found in the scanned paper chart'", timeout=60_000)
        assert page.locator(".ccm-evidence input").first.input_value() == "scanned consent, page 2"
        page.locator(".ccm-rerun").click()
        # the re-run's own message (the add's "...; audit re-run" is still shown until the re-run ends)
        page.wait_for_selector(".ccm-status:has-text('re-run with every decision saved so far')", timeout=120_000)
        totals = page.locator(".ccm-totals").inner_text()
        assert "1 overturned" in totals and "Sample:" in totals
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing runs off the right edge at 1280 px
        page.screenshot(path=str(shots / "review-after-add.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for _ in range(40):  # stopping `ccm-audit review` stops its Voila server (and the kernels with it)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.25)
        except OSError:
            break
    else:
        raise AssertionError("the Voila server outlived `ccm-audit review`")
    log = pd.read_csv(audit_dir / "overrides.csv", dtype=str, keep_default_na=False)
    over = log[log["decision"] == "overturn"].iloc[0]
    assert (over["reviewer"], over["reason"], over["evidence"]) == ("Pat Reviewer", "consent found in the scanned paper chart",
                                                                   "scanned consent, page 2")
    assert {"overturn", "confirm", "add"} <= set(log["decision"]) <= {"overturn", "accept", "confirm", "add"}
    add = log[log["decision"] == "add"].iloc[0]
    assert (add["rule_id"], add["units_supported"], add["evidence"]) == ("CHART", "0", "progress notes, page 4")

    # `check` into the audit folder applies its decisions by default; the report takes them and says so
    r = run_cli("check", demo_dir, "--period", "2026Q3", "--out", audit_dir, "--sample", "30", "--seed", "7")
    assert r.returncode == 0 and "1 overturned" in r.stdout, r.stdout + r.stderr[-2000:]
    out = tmp_path / "q3"
    r = run_cli("report", demo_dir, "--period", "2026Q3", "--out", out, "--sample", "30", "--seed", "7", "--overrides",
                audit_dir / "overrides.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    f = pd.read_csv(out / "audit" / "findings.csv", dtype=str, keep_default_na=False)
    hit = f[(f["patient_id"] == over["patient_id"]) & (f["service_month"] == over["service_month"]) & (f["rule_id"] == over["rule_id"])]
    assert set(hit["review_decision"]) == {"overturn"} and set(hit["reviewed_by"]) == {"Pat Reviewer"}
    import json
    s = json.loads((out / "audit" / "run.json").read_text())["summary"]
    assert s["overturned"] == 1
    html = (out / "report.html").read_text()
    assert f"{len(log)} auditor decisions after chart review, 1 of them overturning a finding and 1 adding a defect" in html
    assert f"${s['overpayment']:,.2f}" in html


def test_training_widget_quiz_pitfall_switch_and_slider(tmp_path, browser):
    results = tmp_path / "quiz.csv"
    nb = with_parameters("pitfalls_training.ipynb", {"pitfall": "CONS-02", "results_file": str(results)}, tmp_path / "pitfalls_training.ipynb")
    proc, url = serve(nb, tmp_path / "voila.log")
    try:
        page = browser.new_page()
        page.goto(url, timeout=180_000)
        page.wait_for_selector(".ccm-verdict-box:has-text('NOT FULLY SUPPORTED')", timeout=180_000)
        assert "CONS-02" in page.locator(".ccm-verdict-box").inner_text()
        # switch pitfall: every knob back to the new scenario, no CONS-02 left over
        page.locator(".ccm-cost input").uncheck()
        page.wait_for_selector(".ccm-verdict-box:has-text('CONS-02')", timeout=60_000)
        from ccmlib.workbench.training import SCENARIOS
        page.locator(".ccm-pitfall select").select_option(label=f"TIME-06: {SCENARIOS['TIME-06'][0]}")
        page.wait_for_selector(".ccm-verdict-box:has-text('on 18 qualifying minutes')", timeout=60_000)
        assert "CONS-02" not in page.locator(".ccm-verdict-box").inner_text()
        assert page.locator(".ccm-cost input").is_checked()
        assert page.locator(".ccm-minutes .widget-readout").inner_text().strip() == "18"
        # the slider moves the verdict across 20 minutes by itself
        handle = page.locator(".ccm-minutes .ui-slider-handle, .ccm-minutes .noUi-handle").first
        handle.focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        page.wait_for_selector(".ccm-verdict-box:has-text('SUPPORTED: billed 99490, supported 99490 on 20 qualifying minutes')",
                               timeout=60_000)
        # quiz: no answer is not "Right."; an answer is recorded for the trainer
        page.locator(".ccm-quiz input").check()
        page.wait_for_selector(".ccm-verdict-box:has-text('Quiz')", timeout=60_000)
        page.locator(".ccm-reveal").click()
        page.wait_for_selector(".ccm-note:has-text('Choose supported or not fully supported first')", timeout=60_000)
        assert "Right." not in page.locator(".ccm-verdict-box").inner_text()
        page.fill(".ccm-trainee input", "Sam Trainee")
        page.locator(".ccm-trainee input").press("Tab")
        page.locator(".ccm-answer").get_by_text("supported", exact=True).click()
        page.locator(".ccm-reveal").click()
        page.wait_for_selector(".ccm-verdict-box:has-text('Right.')", timeout=60_000)
        page.wait_for_selector(".ccm-note:has-text('answer saved')", timeout=60_000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = pd.read_csv(results, dtype=str)
    assert list(rows[["trainee", "scenario", "minutes", "answer", "right"]].iloc[0]) == ["Sam Trainee", "TIME-06", "20", "supported", "True"]
