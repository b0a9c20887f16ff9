# Entry points; the README's two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
CACHE ?= $(HOME)/.cache/etcd-operator
# Tests find every etcd build through this one directory (see tests/support/binaries.py).
export ETCD_BIN ?= $(CACHE)/bin

.PHONY: setup demo test unit integration bench etcd clean

setup:
	bash hack/install-deps.sh
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install -q -e '.[operator,test]'
	bash hack/build-etcd.sh

etcd:
	bash hack/build-etcd.sh

demo: setup
	.venv/bin/python hack/demo.py

test: setup
	$(PYTHON) -m pytest tests

unit:
	$(PYTHON) -m pytest tests/unit

integration: etcd
	$(PYTHON) -m pytest -m etcd tests

bench: setup
	.venv/bin/python benchmarks/node_bootstrap.py
