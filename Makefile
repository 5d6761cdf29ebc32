# The few commands people type. Every target works from a clean clone with Go
# on PATH; `make test` is what README.md and .ci/run name.

PKGS := ./events/... ./shared/... ./trainer/... ./services/...
export CGO_ENABLED := 0

.PHONY: build test unit test-faults compose-check images vet fmt fmt-check bench fuzz clean

build:
	go build -o bin/eft ./services/eft

# Everything CI checks: formatting, vet, every package's tests, the slow
# cluster fault tests and the compose/image checks (about 8 minutes on 2 cores
# from a clean clone, most of it building the compose plugin once).
test: unit test-faults compose-check

# The quick loop while developing (about a minute).
unit: fmt-check vet
	go test -count=1 -timeout 20m $(PKGS)

# The slow cluster tests (docs/deploy.md): an 8 s NATS outage mid-run, and
# 20 concurrent runs through 3 trainers with throughput and latency figures.
test-faults:
	EFT_SLOW_TESTS=1 go test -count=1 -timeout 15m -v -run 'NATSRestart|Load' ./services/cluster/

# docker compose config on compose.yaml (builds the compose plugin from the
# Go module proxy when docker has none), then the image build with buildah
# where it is installed.
compose-check:
	infra/compose-check.sh
	infra/build-images.sh --check

images:
	infra/build-images.sh

vet:
	go vet $(PKGS)

fmt:
	gofmt -w events shared trainer services

fmt-check:
	@out=$$(gofmt -l events shared trainer services); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Benchmarks are not part of `make test`: their figures go in README/docs.
bench:
	go test -run '^$$' -bench . -benchmem $(PKGS)

# Long fuzzing, one target at a time; FUZZTIME per target.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$(go list $(PKGS)); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin .eft
