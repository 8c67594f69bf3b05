# ccm-audit: `make demo` sets everything up and audits the bundled demo practice; `make test` runs all tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean-venv demo-data chromium lab review

setup: $(STAMP)

$(STAMP): pyproject.toml jupyter/overrides.json
	@command -v chromium >/dev/null 2>&1 || $(MAKE) --no-print-directory chromium
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q ccmlib >/dev/null  # an editable install is not compiled; with PYTHONDONTWRITEBYTECODE every run would compile it
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ccm-audit)" >/dev/null
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# Debian's chromium: browser tests (Playwright drives it; `playwright install` cannot download here)
chromium:
	@echo "installing Debian chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	 else sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi \
	 || echo "WARNING: could not install chromium (needs root or sudo); the browser tests will fail"

ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

# JupyterLab on this machine only (127.0.0.1), no browser opened, no news or update checks; works as root
lab: setup
	@echo "JupyterLab: open the http://127.0.0.1:8888/lab?token=... address printed below (Ctrl-C stops it)"
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 --ServerApp.port=8888 --no-browser $(ROOT_FLAG)

# chart review of the demo audit (make demo writes it); for your own: .venv/bin/ccm-audit review AUDIT_DIR
review: setup
	@[ -f reports/demo/run.json ] || $(MAKE) --no-print-directory demo
	$(BIN)/ccm-audit review reports/demo --port 8866

demo: setup
	$(BIN)/ccm-audit check data/demo --out reports/demo --period 2026Q3
	@echo "Findings written to reports/demo/ (findings.csv, claim_lines.csv, patient_months.csv, data_quality.csv, run.json)"
	@echo "Next:"
	@echo "  .venv/bin/ccm-audit report data/demo --period 2026Q3 --out reports/q3      # the quarterly report (PDF, HTML, Excel)"
	@echo "  make review                                                               # chart review of reports/demo in the browser"
	@echo "  .venv/bin/ccm-audit prebill data/demo --month 2026-09 --out reports/prebill  # the monthly pre-bill worklist"
	@echo "  make lab                                                                  # the notebooks in JupyterLab"

test: setup
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)

DEMO_ARGS := --patients 120 --months 2026-01..2026-09 --seed 2026

demo-data: setup
	rm -rf data/demo
	$(BIN)/ccm-audit synth $(DEMO_ARGS) --out data/demo
