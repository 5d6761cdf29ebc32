# The few commands people type. Every target works from a clean clone with Go
# on PATH; `make test` is what README.md and .ci/run name.

PKGS := ./events/... ./shared/... ./trainer/... ./services/...
export CGO_ENABLED := 0

.PHONY: build test vet fmt fmt-check bench fuzz clean

build:
	go build -o bin/eft ./services/eft

test: fmt-check vet
	go test -count=1 -timeout 20m $(PKGS)

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
