# sessionbot build, test and CI entry points. `make test` is what CI runs (see .ci/run).

GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUZZTIME    ?= 10s
FUZZSMOKE   ?= 3s
CHAOSRUNS   ?= 40

.PHONY: all test test-load mutants lint vet staticcheck gofmt build bench test-long fuzz clean

all: test build

## test: gofmt, vet, staticcheck, the race-enabled suite (real redis-server required), a short
## run of every fuzz target, a 20,000-key benchmark smoke run (so the harness cannot rot), and
## the deploy/ manifest checks (their own module)
test: gofmt vet staticcheck
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz FUZZTIME=$(FUZZSMOKE)
	$(GO) run ./cmd/sessionbench -n 20000 -loop-sample 100 -cluster-n 3000
	cd deploy && $(GO) test -count=1 ./...

## mutants: breaks each safety rule listed in cmd/mutants/mutations.go with a one-line change, in
## a scratch copy of the tree, and runs the tests named for it: each break must fail a test. Fails
## if one survives or a listed snippet no longer occurs exactly once (CI runs it; two at a time, each on its own copy of the tree: ~4 min warm)
mutants:
	$(GO) run ./cmd/mutants

## lint: gofmt, vet and staticcheck, no tests
lint: gofmt vet staticcheck

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

gofmt:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './vendor/*' -not -path '*/testdata/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## build: static, reproducible binary at bin/sessionbot
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/sessionbot ./cmd/sessionbot

## bench: the §10 benchmark (starts its own redis-server, seeds 1,000,000 sessions): the engine,
## the sessionbot CLI end to end and the bot from button to report, each × the runbook's xargs
## method (measured twice), with what Redis allows (ceilings) below the table
bench:
	$(GO) run ./cmd/sessionbench

## test-load: the 1,000,000-session load test through the bot (build tag long; CI runs it)
test-load:
	$(GO) test -count=1 -tags long -run TestLoadMillionSessionsThroughTheBot -timeout 10m -v ./bot/

## test-long: the suite plus long-running tests (build tag long), and CHAOSRUNS runs of the
## randomized invariant test instead of the 6 of `make test`
test-long:
	SESSIONBOT_CHAOS_RUNS=$(CHAOSRUNS) $(GO) test -race -count=1 -tags long -timeout 20m ./...

## fuzz: short runs of the command parser, session decoder and Slack payload fuzzers
fuzz:
	$(GO) test -run XXX -fuzz FuzzParseArgs -fuzztime $(FUZZTIME) ./cleanup
	$(GO) test -run XXX -fuzz FuzzDecodeSession -fuzztime $(FUZZTIME) ./cleanup
	$(GO) test -run XXX -fuzz FuzzSlashText -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./bot
	$(GO) test -run XXX -fuzz FuzzBlockActions -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./bot

clean:
	rm -rf bin
