# TransferLab: `make run` serves the app, `make test` runs ruff (settings in pyproject.toml), then the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
# Browser tests drive Debian's Chromium (never a downloaded browser); without it they are skipped.
CHROMIUM := /usr/bin/chromium
# The tests of studies shared by several workers run a throwaway PostgreSQL server (Debian's postgresql
# package; without it they are skipped).

.PHONY: run test bench clean postgres-server

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(STAMP_DEV): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(VENV)/bin/streamlit run app.py

$(CHROMIUM):
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; the browser tests will be skipped"; \
	else echo "warning: install Debian's chromium package to run the browser tests"; fi

postgres-server:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "warning: could not install postgresql; the tests of shared studies will be skipped"; \
	else echo "warning: install Debian's postgresql package to run the tests of shared studies"; fi

test: $(STAMP_DEV) | $(CHROMIUM) postgres-server
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests -q -n 2 --dist loadfile

bench: $(STAMP_RUN)
	$(PY) -m core bench quick-shapes

clean:
	rm -rf $(VENV) build .pytest_cache
