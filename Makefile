# slipway — one binary for the whole model supply chain.
GO      ?= go
BIN     := bin/slipway
PKGS    := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/slipway
	$(GO) build -o $(BIN) ./cmd/slipway

.PHONY: run
run: build ## Start the server on embedded defaults (SQLite + ./.slipway, 127.0.0.1:8700)
	./$(BIN) server

.PHONY: demo
demo: build ## The whole supply chain in seconds: gate, approval, canary, automatic rollback (slipway demo)
	./$(BIN) demo

.PHONY: test
test: test-deps ## Vet, run every test with the race detector, the gateway's again without (its raw socket path), build for macOS and Windows
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)
	$(GO) test -timeout 10m ./internal/gateway
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/slipway
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/slipway

.PHONY: test-deps
test-deps: ## Install what the tests run against when it is missing (Debian's prometheus)
	@command -v prometheus >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; } \
		|| { echo "test-deps: could not install Prometheus (apt-get install prometheus, as root); go test -short runs without it"; exit 1; }

.PHONY: test-short
test-short: ## Unit tests only (skips end-to-end tests against the real binary)
	$(GO) test -short $(PKGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for 30s each
	$(GO) test -run '^$$' -fuzz '^FuzzValidateName$$' -fuzztime 30s ./internal/domain
	$(GO) test -run '^$$' -fuzz '^FuzzParseMatchRule$$' -fuzztime 30s ./internal/domain
	$(GO) test -run '^$$' -fuzz '^FuzzParseStickyKey$$' -fuzztime 30s ./internal/domain
	$(GO) test -run '^$$' -fuzz '^FuzzJSONStickyKey$$' -fuzztime 30s ./internal/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicy$$' -fuzztime 30s ./internal/gate
	$(GO) test -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime 30s ./internal/rollout
	$(GO) test -run '^$$' -fuzz '^FuzzBearer$$' -fuzztime 30s ./internal/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzCompareAnswers$$' -fuzztime 30s ./internal/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzParseOpenAIRequest$$' -fuzztime 30s ./internal/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzParseTraceparent$$' -fuzztime 30s ./internal/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzEventPatterns$$' -fuzztime 30s ./internal/notify
	$(GO) test -run '^$$' -fuzz '^FuzzWebhookURL$$' -fuzztime 30s ./internal/notify
	$(GO) test -run '^$$' -fuzz '^FuzzHash$$' -fuzztime 30s ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzSpecValidate$$' -fuzztime 30s ./internal/analysis
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 30s ./internal/analysis/promprov
	$(GO) test -run '^$$' -fuzz '^FuzzValidatePath$$' -fuzztime 30s ./internal/artifact
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime 30s ./internal/artifact
	$(GO) test -run '^$$' -fuzz '^FuzzCheckToken$$' -fuzztime 30s ./internal/auth
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 30s ./internal/runtime/xgboost
	$(GO) test -run '^$$' -fuzz '^FuzzFloat64s$$' -fuzztime 30s ./internal/runtime/oip
	$(GO) test -run '^$$' -fuzz '^FuzzCheckURL$$' -fuzztime 30s ./internal/runtime/egress
	$(GO) test -run '^$$' -fuzz '^FuzzSplitCommand$$' -fuzztime 30s ./internal/runtime
	$(GO) test -run '^$$' -fuzz '^FuzzInspect$$' -fuzztime 30s ./internal/dataset
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 30s ./internal/dataset

.PHONY: bench
bench: bench-deps ## Run the benchmarks behind docs/performance.md (a few minutes, ~2 GiB of disk)
	$(GO) test -run '^$$' -bench . -benchtime 20x ./internal/store/sqlstore
	$(GO) test -run '^$$' -bench . -benchtime 20x ./internal/api
	./bench/ingest.sh
	./bench/xgboost.sh

.PHONY: bench-gateway
bench-gateway: ## Gateway against nginx and Portkey with wrk on loopback (installs wrk, nginx, Node as needed; ~5 min)
	./bench/gateway/run.sh

.PHONY: bench-rollback
bench-rollback: ## Automatic rollback: the judge's requests to detect, A/A false rollbacks, 20 rollbacks on a real server at 1,000 req/s (~5 min)
	./bench/rollback/run.sh

.PHONY: bench-deps
bench-deps: ## Install what the benchmarks compare against (Debian's XGBoost, bc)
	@if ! /usr/bin/python3 -c 'import xgboost' 2>/dev/null || ! command -v bc >/dev/null; then \
		apt-get update && apt-get install -y python3-xgboost python3-sklearn python3-pandas bc; fi

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet $(PKGS)

.PHONY: clean
clean: ## Remove build output (not ./.slipway)
	rm -rf bin
