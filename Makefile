# cvm-operator. The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

envtest: ## Build (or find) kube-apiserver, etcd, kubectl and helm
	@hack/setup-envtest.sh >/dev/null

tools: ## Build (or find) promtool, hack/kstatus (the GitOps checks) and actionlint
	@hack/setup-tools.sh promtool >/dev/null
	@hack/setup-tools.sh kstatus >/dev/null
	@hack/setup-tools.sh actionlint >/dev/null

image: ## The operator's OCI image, no daemon: target/image/cvm-operator.oci.tar (static binary FROM scratch); prints digest and size
	hack/image.sh

build: ## Build the binary
	$(CARGO) build --bin cvm-operator

lint: ## cargo fmt --check, clippy -D warnings, actionlint of the workflows
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	"$$(hack/setup-tools.sh actionlint)" .github/workflows/*.yml deploy/ci/*.yaml

api-schema: ## Install the official API schemas (tccli from PyPI, data only) into .venv
	@hack/api-schema.sh >/dev/null

# The schema conformance test reads the official api.json through
# CVM_API_SCHEMA_DIR and fails (never skips) without it.
unit: ## Unit tests only: fast, no apiserver, no simulator process (incl. schema conformance)
	schema=$$(hack/api-schema.sh) && export CVM_API_SCHEMA_DIR=$$schema && \
	  $(CARGO) test --lib --bins

test: envtest tools lint ## Everything: unit, simulator, credential sources, real-apiserver e2e, chart, image, alerts, Argo CD/Flux health, official Python SDK
	$(CARGO) build --all-targets
	hack/image.sh
	schema=$$(hack/api-schema.sh) && export CVM_API_SCHEMA_DIR=$$schema && \
	export KUBEBUILDER_ASSETS=$$(hack/setup-envtest.sh) && \
	  $(CARGO) test --lib --bins && \
	  $(CARGO) test --test cloud && \
	  $(CARGO) test --test credentials && \
	  $(CARGO) test --test footprint && \
	  $(CARGO) test --test e2e -- --test-threads 4
	CHAOS_PROFILE=short hack/chaos.sh
	CVM_OPERATOR_BIN=target/debug/cvm-operator hack/python-sdk-test.sh

chaos: envtest ## Chaos cases (restarts, outages, clock skew, failover, rotation, long run): one table, < 30 min; knobs CHAOS_*
	hack/chaos.sh

crds: ## Regenerate crds/, the chart's copy and deploy/manifests
	$(CARGO) run -q --bin cvm-operator -- crd --kind CvmInstance > crds/cvminstances.yaml
	$(CARGO) run -q --bin cvm-operator -- crd --kind CvmAccount > crds/cvmaccounts.yaml
	$(CARGO) run -q --bin cvm-operator -- crd --kind CvmInstanceSet > crds/cvminstancesets.yaml
	hack/render-manifests.sh

demo: ## Local control plane + operator on the in-process simulator + examples/
	hack/demo.sh

dev-up: ## Start a local control plane and the simulator (prints the KUBECONFIG line)
	hack/dev-up.sh

dev-down: ## Stop what dev-up and demo started
	hack/dev-down.sh

bench: envtest ## Benchmarks (simulator throughput, operator scale); prints the numbers
	$(CARGO) build --release --bin cvm-operator --benches
	export KUBEBUILDER_ASSETS=$$(hack/setup-envtest.sh) && $(CARGO) bench --bench simulator && $(CARGO) bench --bench operator

.PHONY: help envtest tools image api-schema build lint unit test chaos crds demo dev-up dev-down bench
