# otklik: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OTK := $(VENV)/bin/otklik
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench train-moderation venv native lock deb-packages kafka-start kafka-stop clean dashboards

# The virtual environment, created when missing and refreshed when the dependencies change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)
	@git rev-parse --git-dir >/dev/null 2>&1 && git config core.hooksPath .githooks || true

# Opt-in: the pure core's hot modules compiled with mypyc (build_native.py; README, "The compiled
# core"). A later edit of a compiled module's source makes otklik run every module as plain Python.
native: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,native]'
	$(PY) build_native.py --strict
	$(PY) -m pytest -q -p no:cacheprovider -m native tests/unit/test_native.py

# The main job: local Kafka, the worker and the traffic simulator; Ctrl-C stops what it started.
run: venv
	bash deploy/run-local.sh

# Every test, on real services: starts Kafka (and installs Debian's Prometheus and Alertmanager)
# when missing, and stops what it started.
test: deb-packages venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	bash deploy/with-services.sh $(PY) -m pytest -q -ra -m 'not native' $(PYTEST_ARGS)

# Benchmarks: each figure beside a baseline measured in the same run.
bench: venv
	bash deploy/with-services.sh $(PY) -m bench

# The moderation model (agents/text/models/moderation.npz) from the corpora in shared/data/moderation (beside the repository):
# reproducible (fixed seeds, a keyed split); not part of `make test`. Its model card: agents/text/models/README.md.
train-moderation: venv
	$(PY) -m training.train_moderation

# Grafana dashboards as code: regenerate deploy/grafana/dashboards/*.json (a unit test fails when they are stale).
dashboards: venv
	$(OTK) grafana generate --out deploy/grafana/dashboards

# Prometheus, Alertmanager, PostgreSQL (the store's tests start their own cluster with its
# initdb and pg_ctl, tests/postgres.py) and Chromium (the browser tests launch it by its path,
# tests/browser.py: Playwright downloads no browser) come from Debian's packages.
deb-packages:
	@command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v chromium >/dev/null || { \
	  echo "installing Debian's prometheus, prometheus-alertmanager, postgresql and chromium ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager postgresql chromium >/dev/null; }

# Re-record the versions the tests ran with (constraints.txt).
lock: venv
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

kafka-start: venv
	$(OTK) kafka start

kafka-stop: venv
	$(OTK) kafka stop

clean:
	-$(OTK) kafka stop
	-$(PY) build_native.py --clean
	rm -rf $(VENV) deploy/kafka/.run .run build *.egg-info
