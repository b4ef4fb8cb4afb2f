# Perpetua Flow backend. `make help` lists the targets.
SHELL := /bin/bash
# The module proxy alone: the ",direct" fallback reaches nothing on our machines.
export GOPROXY ?= https://proxy.golang.org
export GOTOOLCHAIN ?= local

MODULES  := libs services/gateway services/auth services/tasks services/ai services/billing deploy/local deploy/k8s e2e bench
PACKAGES := $(addprefix ./,$(addsuffix /...,$(MODULES)))
TEST_TIMEOUT ?= 30m
PORT ?= 8080

.PHONY: help run test test-race bench bench-go chaos lint fmt tidy build build-alone

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## the whole system locally: embedded NATS, private Postgres under .data/ (or DATABASE_URL), all services
	go run ./deploy/local/cmd/stack -port $(PORT)

test: build-alone ## every test, against real Postgres and NATS (started by the tests when not given)
	go test -count=1 -timeout $(TEST_TIMEOUT) $(PACKAGES)

test-race: ## every test with the race detector
	go test -race -count=1 -timeout $(TEST_TIMEOUT) $(PACKAGES)

build: ## build every module in the workspace
	go build $(PACKAGES)

build-alone: ## each module builds on its own (replace directive to libs, no go.work)
	@for m in $(MODULES); do (cd $$m && GOWORK=off go build ./...) || exit 1; done

bench: ## load the whole system (vegeta, 64 connections) against the machine's floors: writes bench/REPORT.md and bench/latency.png
	go run ./bench/cmd/bench

bench-go: ## the Go micro-benchmarks of every module (token verification, relay, consumes, reminders, ...)
	go test -run '^$$' -bench . -benchtime 2s $(PACKAGES)

chaos: ## kill -9 each service, stop NATS, restart Postgres under load; prints lost/duplicated/recovery per fault
	CHAOS_FULL=1 go test -count=1 -run '^TestChaos$$' -timeout 30m -v ./e2e

lint: ## gofmt, go vet and staticcheck over every module
	@test -z "$$(gofmt -l $(MODULES))" || (gofmt -l $(MODULES); exit 1)
	go vet $(PACKAGES)
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PACKAGES)

fmt: ## gofmt every module
	gofmt -w $(MODULES)

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy) || exit 1; done
