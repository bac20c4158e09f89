# Real Kubernetes for the tests (docs/cluster.md). Included by the top-level Makefile, so paths
# are relative to the repository root; BIN and STAMP (the venv) come from there, so include this
# after they are defined.
#   make tools          build the pinned binaries into .tools/bin (skips what is up to date)
#   make cluster-up     start a loopback cluster from them; prints `export KUBECONFIG=...`
#   make cluster-down   stop it and remove its state

TOOLS_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CLUSTER = $(BIN)/python -m tollgate.testing.cluster

KIND_KUBECONFIG = .tools/kind/kubeconfig

CHECKOV_VENV = .tools/checkov

.PHONY: tools checkov cluster-up cluster-down cluster-status kind-up kind-down

tools: ## build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, kwokctl, helm, kstatus into .tools/bin
	@$(TOOLS_MK_DIR)/build.sh

checkov: $(CHECKOV_VENV)/.installed ## checkov (the chart's security scan) in a venv of its own, from a hashed lock

$(CHECKOV_VENV)/.installed: $(TOOLS_MK_DIR)/checkov.lock
	@echo "tools: checkov: installing into $(CHECKOV_VENV) (about 2 minutes the first time)"
	@python3 -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	@$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes --no-deps -r $<
	@touch $@

cluster-up: tools $(STAMP) ## start the local cluster (etcd, control plane, kwok nodes) on 127.0.0.1
	@$(CLUSTER) up

cluster-down: ## stop the local cluster and remove its state
	@$(CLUSTER) down

cluster-status: ## show whether the local cluster runs, and where
	@$(CLUSTER) status

kind-up: tools $(STAMP) ## a kind cluster (needs Docker and kind) with the pinned Gateway API CRDs
	@command -v kind >/dev/null || { echo "kind-up: kind is not installed (https://kind.sigs.k8s.io)"; exit 1; }
	kind create cluster --name tollgate --kubeconfig $(KIND_KUBECONFIG)
	.tools/bin/kubectl --kubeconfig $(KIND_KUBECONFIG) apply --server-side -f "$$($(CLUSTER) gateway-api-crds)"
	@echo "export KUBECONFIG=$(CURDIR)/$(KIND_KUBECONFIG)   # then: make e2e"

kind-down: ## delete the kind cluster of kind-up
	kind delete cluster --name tollgate
