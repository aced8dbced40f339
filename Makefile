# kiln: the two commands a person needs are `make run` and `make test`.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin/kiln
DATA_DIR   ?= $(CURDIR)/.data
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION)
# Debian packages the tests and the appliance use.
APT_PKGS   := git ca-certificates

.PHONY: build run test bench deps fmt vet clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kiln

# run starts kiln with its data in $(DATA_DIR), syncing examples-repo/ in
# directory mode; kubectl then works with
# KUBECONFIG=$(DATA_DIR)/admin.kubeconfig.
run: deps build
	$(BIN) server --data-dir $(DATA_DIR) --source dir:$(CURDIR)/examples-repo

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
	@if ! command -v git >/dev/null 2>&1; then apt-get update -qq && apt-get install -y -qq $(APT_PKGS); fi
	@command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl not found; the kubectl e2e tests need it"
	$(GO) mod download

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
