# Keelson: a Kubernetes cluster from one binary.
#   make run    install what is needed, build, start a one-node cluster, print the KUBECONFIG line
#   make run-two  the same with a second node (also: make run NODES=2) (keelson agent in network namespace keelson-node2)
#   make test   install what is needed and run the whole test suite
#   make bench  print API server throughput and latency figures
#   make generate  regenerate the committed OpenAPI definitions

SHELL := /bin/bash
GO ?= go
DATA_DIR ?= /var/lib/keelson
PORT ?= 6443
K8S_VERSION := v1.37.2
VERSION_PKG := k8s.io/component-base/version
KUBECTL_LDFLAGS := -X $(VERSION_PKG).gitVersion=$(K8S_VERSION) -X $(VERSION_PKG).gitMajor=1 -X $(VERSION_PKG).gitMinor=37 -X $(VERSION_PKG).gitTreeState=clean

.PHONY: all build images kubectl helm k9s run run-two test generate bench deps vet fmt-check clean

all: build

# deps installs what building and testing need: Go for everything, and for the node agent Debian's
# containerd, runc, nftables, CNI plugins, static busybox (the busybox image) and iproute2, installed
# when one is missing and we are root (the node needs root anyway).
NODE_PACKAGES := containerd runc nftables containernetworking-plugins busybox-static iproute2
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required (https://go.dev/dl)"; exit 1; }
	@missing=; for c in containerd runc nft busybox ip; do command -v $$c >/dev/null || missing=1; done; \
	[ -x /usr/lib/cni/bridge ] || missing=1; \
	if [ -n "$$missing" ]; then \
		if [ $$(id -u) -eq 0 ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_PACKAGES); \
		else \
			echo "note: the node agent needs $(NODE_PACKAGES); run make as root to install them"; \
		fi; \
	fi

build: deps
	$(GO) build -o bin/keelson ./cmd/keelson

kubectl: deps
	$(GO) build -ldflags "$(KUBECTL_LDFLAGS)" -o bin/kubectl ./conformance/kubectl

# helm is built from the module proxy at the version hack/tools pins, for the helm suite.
helm: deps
	cd hack/tools && $(GO) build -o ../../bin/helm helm.sh/helm/v4/cmd/helm

# k9s is built from the module proxy at the version hack/k9s pins, for the k9s suite, which drives
# it in tmux.
k9s: deps
	@command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; }
	cd hack/k9s && $(GO) build -o ../../bin/k9s github.com/derailed/k9s

# images builds the static pause program and writes the pause and busybox image archives into
# $(DATA_DIR)/agent/images, which the node imports into containerd at start.
images: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/keelson-pause ./cmd/keelson-pause
	./bin/keelson images build --data-dir $(DATA_DIR) --pause-binary bin/keelson-pause

# NODES=2 makes `make run` start a second node too (see run-two).
NODES ?= 1
ifeq ($(NODES),2)
run: run-two
else
run: build images
	./bin/keelson server --data-dir $(DATA_DIR) --secure-port $(PORT)
endif

# run-two starts the server (with its node) in the background and, once it answers, a second
# node in the foreground: `keelson agent` in network namespace keelson-node2 (a veth pair to
# this host, node address 10.254.N.2), data in $(DATA_DIR)/node2. Ctrl-C stops both; the second
# node's namespace and the host's route to its pods go with it.
run-two: build images
	./bin/keelson images build --data-dir $(DATA_DIR)/node2 --pause-binary bin/keelson-pause
	rm -f $(DATA_DIR)/server.out; \
	./bin/keelson server --data-dir $(DATA_DIR) --secure-port $(PORT) > >(tee $(DATA_DIR)/server.out) & server=$$!; \
	trap 'kill -INT $$server 2>/dev/null; wait $$server' EXIT; \
	until grep -q "export KUBECONFIG" $(DATA_DIR)/server.out 2>/dev/null; do \
		kill -0 $$server 2>/dev/null || exit 1; sleep 0.5; \
	done; \
	./bin/keelson agent --netns keelson-node2 --node-name keelson-node2 --kubeconfig $(DATA_DIR)/admin.kubeconfig --data-dir $(DATA_DIR)/node2

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# test runs every unit test, then the behaviour suites in conformance/ against a keelson server
# they start themselves (unset KUBECONFIG so that they never touch another cluster by accident;
# run `go test ./conformance/...` with KUBECONFIG set to point them at any cluster).
test: deps build kubectl helm k9s fmt-check vet
	env -u KUBECONFIG BIN_keelson=$(CURDIR)/bin/keelson BIN_kubectl=$(CURDIR)/bin/kubectl HELM_BINARY=$(CURDIR)/bin/helm K9S_BINARY=$(CURDIR)/bin/k9s \
		$(GO) test -count=1 -timeout 25m ./...

# generate rewrites the committed generated code (the OpenAPI definitions) from go.mod's modules.
generate:
	./hack/update-openapi.sh

bench: build
	$(GO) run ./cmd/keelson-bench

clean:
	rm -rf bin
