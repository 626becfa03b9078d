# Two commands matter: `make run` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQS_STAMP := $(VENV)/.requirements-installed
NODE_STAMP := node_modules/.npm-ci-done
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
TEST_CLUSTER := test
CITUS_CLUSTER := citus
# app.settings is production unless told otherwise: everything make runs here (the dev server, the tests,
# the local clusters, the benchmarks' set-up) is development. `.ci/run` calls `make test`, so CI is too.
export MARKETPLACE_ENV := development

.PHONY: help setup system-packages venv node-packages run test test-citus lint cluster-up cluster-down cluster-status cluster-destroy migrate bench-cluster bench-2pc bench-round-trips bench-search bench bench-rebalance chaos

help:
	@echo "make run             set up, start the local cluster, migrate, serve on http://$(HOST):$(PORT)"
	@echo "make test            set up, lint (ruff, mypy), start the test cluster, run the whole test suite"
	@echo "make test-citus      the test suite in Citus mode on a local Citus cluster (needs the citus extension; not CI)"
	@echo "make lint            ruff (the whole repository) and mypy (sharding/, cluster/); needs no cluster"
	@echo "make bench-2pc       cross-worker (2PC) vs same-worker transfers per second"
	@echo "make bench-round-trips  round trips per same-worker and cross-worker purchase, per node"
	@echo "make bench-search    search p50/p99 on 2 workers vs 1 worker holding the same rows"
	@echo "make bench           the API under Locust on fresh clusters (ours and Citus), with its baselines (22 min before Citus)"
	@echo "make bench-rebalance an online rebalance from 2 to 3 workers under Locust load (about 6 min)"
	@echo "make chaos           faults (crashes, a partition, a slow link, 2PC connections cut) under load, invariants checked (root; about 7 min)"
	@echo "make cluster-status  every node: role, port, up/down, shards, in-doubt transactions"
	@echo "make cluster-down    stop the dev cluster (data kept)"
	@echo "make cluster-destroy delete the dev cluster and its data"

setup: system-packages venv node-packages

system-packages:
	@bash cluster/install-system-packages.sh

venv: $(REQS_STAMP)

$(REQS_STAMP): requirements.txt requirements-prod.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing Python packages into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Front-end packages (Chart.js) at the versions of package-lock.json; the app serves them itself (no CDN).
node-packages: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@echo "installing front-end packages into node_modules ..."
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

cluster-up: setup
	@$(PY) -m cluster up --workers $(WORKERS)

migrate: cluster-up
	@$(PY) manage.py migrate_cluster

# The maintenance loop (recovery of in-doubt transactions) runs beside the web server and stops with it.
run: migrate
	@$(PY) manage.py seed_demo --users 50 --items 500 --if-empty
	@echo "serving on http://$(HOST):$(PORT) (Ctrl-C stops the server; the cluster keeps running)"
	@$(PY) manage.py maintenance & maintenance=$$!; \
	trap 'kill $$maintenance 2>/dev/null; wait $$maintenance 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# Lint first: CI (.ci/run runs make test) fails on a lint or type error as on a failing test.
test: setup lint
	@CLUSTER_NAME=$(TEST_CLUSTER) $(PY) -m cluster up --workers 2
	@CLUSTER_NAME=$(TEST_CLUSTER) DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py migrate_cluster
	@CLUSTER_NAME=$(TEST_CLUSTER) $(PY) -m pytest -m "not citus_engine" $(PYTEST_ARGS)

# The suite on a local Citus cluster `citus` (SHARDING_ENGINE=citus, recorded in its cluster.json), without the
# tests about our own engine's internals (marker own_engine). Not part of `make test`; CI does not run it. It
# needs the citus extension for PostgreSQL 15, which no registry here has: README, "Citus", says how to build it.
test-citus: setup
	@CLUSTER_NAME=$(CITUS_CLUSTER) $(PY) -m cluster up --engine citus --workers 2
	@CLUSTER_NAME=$(CITUS_CLUSTER) DJANGO_SETTINGS_MODULE=tests.settings $(PY) manage.py migrate_cluster
	@CLUSTER_NAME=$(CITUS_CLUSTER) $(PY) -m pytest -m "not own_engine" $(PYTEST_ARGS)

# mypy's Django plugin imports tests.settings, which reads a cluster.json: a fixed one that names no running
# cluster, so lint needs no cluster (nothing connects to it). LINT_CLUSTER_CONFIG=... picks another one.
LINT_CLUSTER_CONFIG ?= cluster/typecheck-cluster.json

# Both run (and report) even when the first fails; lint fails if either does.
lint: venv
	@status=0; \
	$(PY) -m ruff check . || status=1; \
	CLUSTER_CONFIG=$(LINT_CLUSTER_CONFIG) $(PY) -m mypy || status=1; \
	exit $$status

# Benchmarks run on their own cluster, `bench`.
bench-cluster: setup
	@CLUSTER_NAME=bench $(PY) -m cluster up --workers 2
	@CLUSTER_NAME=bench $(PY) manage.py migrate_cluster

bench-2pc: bench-cluster
	@CLUSTER_NAME=bench $(PY) -m benchmarks.twopc_transfers $(BENCH_ARGS)

bench-round-trips: bench-cluster
	@CLUSTER_NAME=bench $(PY) -m benchmarks.round_trips $(BENCH_ARGS)

# Brings up, seeds (once) and measures its own clusters, bench-search2 and bench-search1, and stops them.
bench-search: setup
	@$(PY) -m benchmarks.search_latency --compare $(BENCH_ARGS)

# The load benchmark: fresh clusters bench2w, bench1w and benchcitus, gunicorn, Locust, pgbench; results in benchmarks/results/.
BENCH_STAMP := $(VENV)/.requirements-bench-installed
BENCH_DURATION ?= 30
BENCH_WARMUP ?= 10
BENCH_USERS ?= 16
GUNICORN_WORKERS ?= 4
GUNICORN_THREADS ?= 2

$(BENCH_STAMP): requirements-bench.txt requirements.txt requirements-prod.txt $(REQS_STAMP)
	@echo "installing the benchmark's Python packages into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

bench: setup $(BENCH_STAMP)
	@$(PY) -m benchmarks.run_bench --duration $(BENCH_DURATION) --warmup $(BENCH_WARMUP) --users $(BENCH_USERS) \
		--gunicorn-workers $(GUNICORN_WORKERS) --gunicorn-threads $(GUNICORN_THREADS) $(BENCH_ARGS)

# An online rebalance under load: a fresh cluster `rebal` (2 workers), gunicorn, Locust, then `cluster add-node` and
# `manage.py rebalance --yes`; results in benchmarks/results/rebalance-latest.*. Not part of `make test`.
bench-rebalance: setup $(BENCH_STAMP)
	@$(PY) -m benchmarks.rebalance_bench $(BENCH_ARGS)

# Fault injection under load on a fresh cluster `chaos`: SIGKILLs, an iptables partition (run as root), a slow link
# and 2PC connections cut by benchmarks/chaos_proxy.py; results in benchmarks/results/chaos-latest.*. Not part of
# `make test`. Options: CHAOS_ARGS="--window 15 --gap 10 --threads 12 --faults all|name,name".
CHAOS_ARGS ?=

chaos: setup $(BENCH_STAMP)
	@$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

cluster-status: venv
	@$(PY) -m cluster status

cluster-down: venv
	@$(PY) -m cluster down

cluster-destroy: venv
	@$(PY) -m cluster destroy
