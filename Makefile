# The two documented entry points are `make demo` and `make test`; the rest are helpers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow lint bench clean chromium screenshots audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncwatch demo

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow"

# Suites marked slow (kill -9 rounds, benchmarks on small data, the pack against the simulator's
# ground truth, CLI end-to-end runs): CI runs them after `make test` (.ci/run).
test-slow: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m slow

# The dashboards' browser test drives Debian's chromium (Playwright cannot download browsers here).
# A no-op when it is installed; without root or apt the test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the dashboards' browser test will be skipped"

# Regenerates docs/screenshots/*.png from the browser test (real API + streamlit on seeded data).
screenshots: $(STAMP) chromium
	SYNCWATCH_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider -m browser tests/dashboards

# Known vulnerabilities in the installed dependencies (PyPI's advisory data, the same as OSV's for
# PyPI packages); the editable syncwatch itself is skipped. An accepted finding is ignored here with
# --ignore-vuln ID and its reason, in AUDIT_IGNORE (none today). Exits non-zero on any finding.
# pip-audit counts a package whose per-release data it cannot fetch as skipped, not failed: the last
# line says how many were, so a run that audited nothing does not pass for a clean one.
AUDIT_IGNORE :=
audit: $(STAMP)
	@$(BIN)/pip-audit --vulnerability-service pypi --skip-editable --progress-spinner off $(AUDIT_IGNORE) \
		> .audit.log 2>&1; status=$$?; cat .audit.log; \
	skipped=$$(grep -c "could not be audited" .audit.log); rm -f .audit.log; \
	[ "$$skipped" = 0 ] || echo "make audit: $$skipped dependencies could not be audited (no per-release advisory data reachable)"; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every benchmark at its stated size (10M-scale: a quiet machine, about an hour); regenerates docs/benchmarks.
bench: $(STAMP)
	$(BIN)/syncwatch bench all

clean:
	rm -rf $(VENV) .syncwatch
