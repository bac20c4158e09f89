# Real Kubernetes for the tests (docs/cluster.md). Included by the top-level Makefile, so paths
# are relative to the repository root; BIN and STAMP (the venv) come from there, so include this
# after they are defined.
#   make tools          build the pinned binaries into .tools/bin (skips what is up to date)
#   make cluster-up     start a loopback cluster from them; prints `export KUBECONFIG=...`
#   make cluster-down   stop it and remove its state

TOOLS_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CLUSTER = $(BIN)/python -m tollgate.testing.cluster

.PHONY: tools cluster-up cluster-down cluster-status

tools: ## build kube-apiserver, controller-manager, scheduler, etcd, kwok, kwokctl, helm into .tools/bin
	@$(TOOLS_MK_DIR)/build.sh

cluster-up: tools $(STAMP) ## start the local cluster (etcd, control plane, kwok nodes) on 127.0.0.1
	@$(CLUSTER) up

cluster-down: ## stop the local cluster and remove its state
	@$(CLUSTER) down

cluster-status: ## show whether the local cluster runs, and where
	@$(CLUSTER) status
