# Entry points; the README's two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
CACHE ?= $(HOME)/.cache/etcd-operator
# Tests find every pinned build through this one directory (see tests/support/binaries.py).
export ETCD_BIN ?= $(CACHE)/bin
export PATH := $(CACHE)/bin:$(PATH)

.PHONY: setup demo test unit integration kube-tests bench etcd kube crds apiserver-up cluster-down

setup:
	bash hack/install-deps.sh
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install -q -e '.[operator,test]'
	bash hack/build-etcd.sh
	bash hack/build-kube.sh
	bash hack/build-helm.sh

etcd:
	bash hack/build-etcd.sh

kube:
	bash hack/build-kube.sh

demo: setup
	.venv/bin/python hack/demo.py

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest tests

unit:
	$(PYTHON) -m pytest tests/unit

integration: etcd
	$(PYTHON) -m pytest -m etcd tests

kube-tests: kube etcd
	$(PYTHON) -m pytest -m kube tests

# Regenerate the CRD (crds/ and the chart's copy) from the pydantic models.
crds:
	$(PYTHON) -m etcd_operator.crd --write

# A real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1; last line: KUBECONFIG=<path>.
apiserver-up: kube etcd
	@bash hack/apiserver-up.sh

cluster-down:
	bash hack/cluster-down.sh

bench: setup
	.venv/bin/python benchmarks/node_bootstrap.py
	.venv/bin/python benchmarks/membership.py
