# Entry points; the README's two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
# The scripts build into $ETCD_OPERATOR_CACHE when set (a fresh cache for a first-run check), as here.
CACHE ?= $(or $(ETCD_OPERATOR_CACHE),$(HOME)/.cache/etcd-operator)
# Tests find every pinned build through this one directory (see tests/support/binaries.py).
export ETCD_BIN ?= $(CACHE)/bin
export PATH := $(CACHE)/bin:$(PATH)

.PHONY: setup demo demo-hosts lint test unit integration kube-tests e2e bench etcd kube images crds apiserver-up cluster-up cluster-down

setup:
	bash hack/install-deps.sh
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install -q -e '.[operator,test]'
	bash hack/build-etcd.sh
	bash hack/build-kube.sh
	bash hack/build-helm.sh
	bash hack/build-coredns.sh
	bash hack/build-versitygw.sh

etcd:
	bash hack/build-etcd.sh

kube:
	bash hack/build-kube.sh

# The main job: a cluster (kind with Docker, else the local one), the chart, an EtcdCluster.
demo: setup
	bash hack/demo.sh

# etcd-node alone: the clustering guide's three hosts in network namespaces, no Kubernetes.
demo-hosts: setup
	.venv/bin/python hack/demo.py

# Static checks: shellcheck over every shell script (-x follows the files they
# source; -P SCRIPTDIR reads `# shellcheck source=` paths from the script's own
# directory), ruff, and mypy (strict, pydantic plugin) over the agent and the
# operator. No dependency on setup, so `make lint` alone is quick.
lint:
	git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck -x -P SCRIPTDIR
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy node_image/etcd_node operator/etcd_operator

# lint runs after setup (which installs shellcheck), also under `make -j`.
test: setup
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest tests e2e

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

# The local single-node cluster (no Docker; e2e/local/up.sh); last line: KUBECONFIG=<path>.
cluster-up: setup
	@bash e2e/local/up.sh

# Stops both the local cluster and the kube tests' control plane.
cluster-down:
	bash e2e/local/down.sh
	bash hack/cluster-down.sh

# Node, operator, pause and CoreDNS images as archives in ~/.cache/etcd-operator/images.
images:
	bash e2e/images/build.sh

e2e:
	$(PYTHON) -m pytest -m e2e e2e

bench: setup
	.venv/bin/python benchmarks/node_bootstrap.py
	.venv/bin/python benchmarks/membership.py
	.venv/bin/python benchmarks/operator_idle.py
	.venv/bin/python benchmarks/backup_throughput.py
