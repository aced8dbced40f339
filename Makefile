# kiln: the two commands a person needs are `make run` and `make test`.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin/kiln
DATA_DIR   ?= $(CURDIR)/.data
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION)
# Debian packages the tests and the appliance use: git for sources,
# containerd, runc and the CNI plugins for the kubelet, iptables and
# iproute2 for the proxy and pod networks, chromium for the dashboard's
# browser tests, curl for the README's demo.
APT_PKGS   := git ca-certificates containerd runc containernetworking-plugins \
              iptables iproute2 chromium chromium-driver fonts-dejavu-core curl

.PHONY: build images run root test bench deps fmt vet clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kiln

# images builds the demo image of examples-repo (a static Go HTTP server)
# into an archive in the data dir's images/, which kiln imports at start:
# no registry needed.
images:
	$(GO) run ./components/internal/imagebuild/build-demo-web -o $(DATA_DIR)/images/demo-web.tar

# run starts kiln with its data in $(DATA_DIR), syncing examples-repo/ in
# directory mode; kubectl then works with
# KUBECONFIG=$(DATA_DIR)/admin.kubeconfig. It needs root (see root).
run: root deps build images
	$(BIN) server --data-dir $(DATA_DIR) --source dir:$(CURDIR)/examples-repo

# root stops make run early, with the way out, where kiln's node would
# fail later: it runs containerd and runc and writes iptables rules. sudo
# resets PATH, hence the env for a Go installed outside it.
root:
	@test "$$(id -u)" -eq 0 || { echo 'make run needs root (containerd, runc, iptables): sudo env "PATH=$$PATH" make run'; exit 1; }

# test runs every test with the race detector. With KILN_E2E=require (CI)
# a missing prerequisite fails the test instead of skipping it.
test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

# bench prints one line per benchmark: BENCH <name> <value> <unit> [<ratio> vs <baseline>].
bench: deps
	@$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./... | grep '^BENCH'

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl not found; the kubectl e2e tests need it"
	$(GO) mod download

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
