# The two commands ops need, and the pieces they are made of.
#   make demo   bring the local stack up with `ansible-playbook site.yml`
#   make test   every test: lint, unit, app suite, molecule scenarios
# Both install what they need (docker engine, base image, venv) first.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.requirements.sha256
REQ_HASH  := $(shell cat requirements.txt app/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv docker image browser deps lint test test-unit test-app test-molecule demo bench drift drift-timer ara drill clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The venv is reused only while requirements.txt and app/pyproject.toml are
# unchanged (hash stamp); otherwise it is rebuilt from scratch.
venv: ## controller venv (.venv) from requirements.txt + app/
	@if [[ -x $(PY) && -f $(STAMP) && "$$(cat $(STAMP))" == "$(REQ_HASH)" ]]; then \
	  echo "venv up to date ($(REQ_HASH))"; \
	else \
	  python3 -c 'import ensurepip' 2>/dev/null || { apt-get update -q && apt-get install -y -q python3 python3-venv; }; \
	  rm -rf $(VENV); python3 -m venv $(VENV); \
	  $(BIN)/pip install -q --upgrade pip; \
	  $(BIN)/pip install -q -r requirements.txt -e './app[test]'; \
	  $(BIN)/ansible-galaxy collection install --offline -r requirements.yml >/dev/null; \
	  echo "$(REQ_HASH)" > $(STAMP); \
	fi

docker: ## docker engine installed and running
	scripts/ensure-docker.sh

image: docker ## the Debian 12 systemd base image (built locally, cached)
	scripts/build-image.sh

browser: ## Debian's chromium + chromedriver (the browser tests)
	scripts/ensure-test-tools.sh browser

deps: venv image ## everything the tests and the demo need

lint: venv ## yamllint, ansible-lint (production profile), ruff
	yamllint -s .
	ansible-lint
	ruff check .
	ruff format --check .

test-unit: venv ## per-distro data, module unit tests, SELinux module compile, drift timer/ARA tests (no containers)
	scripts/ensure-test-tools.sh systemd promtool postgres selinux
	pytest -q tests

test-app: venv ## the app's pytest suite against real PostgreSQL/Redis/Redis Cluster
	app/scripts/test.sh

test-molecule: deps browser ## every molecule scenario this machine can run
	scripts/test-molecule.sh

test: deps lint test-unit test-app test-molecule ## every test (what CI runs)

demo: deps ## bring the local stack up and show one MISS and one HIT
	ansible-playbook site.yml
	scripts/demo-report.sh

# make bench [BENCH_ARGS=--quick]: the app (edge cache on/off, Redis plaintext/TLS)
# against peer style, original style and static nginx, ~10 min (--quick ~1.5 min).
# make bench URL=https://127.0.0.1:8443/: the same sweep on a running stack's page.
bench: venv ## benchmark (URL=... measures a running stack; BENCH_ARGS=--quick)
	app/scripts/bench.sh $(URL) $(BENCH_ARGS)

# Every ansible-playbook run is recorded by ARA (ansible.cfg) into
# .ansible/ara/ansible.sqlite, or into an ARA API server with ARA_API_SERVER set.
drift: venv ## check+diff over site.yml, recorded in ARA, JSON report; exit 0 in sync, 2 drifted, 1 failed
	scripts/drift.sh $(DRIFT_ARGS)

drift-timer: venv ## install the scheduled drift check (systemd timer on this controller)
	ansible-playbook playbooks/drift_timer.yml $(DRIFT_TIMER_ARGS)

ARA_UI_PORT ?= 8855
export ARA_UI_PORT
ara: venv ## ARA web UI over the recorded runs: http://127.0.0.1:8855 (ARA_UI_PORT)
	scripts/ara-ui.sh

DRILL ?= redis
drill: venv ## fault drill on the running local stack: DRILL=redis|postgres|webhost
	$(PY) scripts/drill.py $(DRILL)

# The demo stack and the molecule scenarios' stacks (left behind only by an
# interrupted `molecule test`).
LOCAL_STACKS ?= cgc cgcmol cgcday2 cgcmon

clean: venv ## remove the local stacks' containers and networks (demo + molecule)
	for stack in $(LOCAL_STACKS); do \
	  CGC_LOCAL_STACK=$$stack ansible-playbook playbooks/local_teardown.yml; \
	done
