# The two commands first: `make run` (three-region demo) and `make test` (the whole suite).
VENV := .venv
PY := $(VENV)/bin/python
REGIONS ?= jizzakh,namangan,fergana

.PHONY: run test test-cluster test-faults-full lint venv broker tools oidc migrate unit integration bench bench-national bench-reporting openapi clean

run: venv broker oidc
	REGIONS=$(REGIONS) $(PY) -m oss_common.cli demo

test: venv broker tools oidc lint
	$(PY) -m pytest -m "not cluster"

# A broker node lost under load, on a three-node cluster of its own (tests/cluster/; CI runs it as its own step).
test-cluster: venv
	$(PY) -m pytest -m cluster tests/cluster -s

# The issue's figures for the outage tests, on PostgreSQL: 500 applications filed while intake's
# database is away 60 s, the catalogue stopped and the consumers' databases away 60 s, the SMS
# gateway answering 503 for 60 s; and a region's notifications started ten minutes after its intake
# (about 15 minutes; CI's own step).
test-faults-full: venv broker
	OSS_FAULT_SECONDS=60 OSS_FAULT_APPLICATIONS=500 OSS_FAULT_NOTIFICATIONS_LATE_SECONDS=600 \
	  $(PY) -m pytest tests/faults/test_nothing_lost.py -k "(outages or started_late) and postgresql" -s

lint: venv
	$(VENV)/bin/ruff check .

unit: venv
	$(PY) -m pytest tests/unit

integration: venv broker
	$(PY) -m pytest tests/integration

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	deploy/local/ensure-venv.sh $(VENV)

broker:
	deploy/local/ensure-broker.sh

tools:
	deploy/local/ensure-tools.sh

# The demo's OpenID Connect provider (npm oidc-provider under deploy/local/oidc/, run by node).
oidc:
	deploy/local/ensure-oidc.sh

bench: venv broker
	$(PY) -m bench.pipeline

# All 14 divisions on this machine at a national peak hour (bench/national.py).
bench-national: venv broker
	$(PY) -m bench.national

bench-reporting: venv
	$(PY) -m bench.reporting_summary

# Every service's OpenAPI document (from its `api` entrypoints and marshmallow schemas) into docs/openapi/.
openapi: venv
	$(PY) -m oss_common.openapi docs/openapi

migrate: venv
	REGIONS=$(REGIONS) $(PY) -m oss_common.cli migrate

clean:
	rm -rf var .pytest_cache
