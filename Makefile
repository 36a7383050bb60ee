# The two commands a new user needs: `make run` and `make test`. Both install what is missing first.
SWIFT ?= swift
SECONDS ?= 60
TEST_FLAGS ?=

.PHONY: run test bench bench-thresholds fuzz asan bootstrap bootstrap-test format clean

bootstrap:
	@scripts/bootstrap

## bootstrap-test: also what the tests run against (ZooKeeper for the registry tests)
bootstrap-test:
	@scripts/bootstrap --test

## run: loopback demo on an embedded server, no external services needed
run: bootstrap
	$(SWIFT) build -c release --product motan
	.build/release/motan demo

## test: the whole suite (builds the CLI first: transport tests drive it as a child process;
## the ZooKeeper tests start their own servers on 127.0.0.1)
test: bootstrap-test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel $(TEST_FLAGS)

## bench: package-benchmark suites (a separate package, so `make test` never builds them), then
## their malloc counts checked against the p90 thresholds stored for this toolchain
SWIFT_TOOLCHAIN ?= $(shell $(SWIFT) --version 2>&1 | sed -n 's/.*Swift version \([0-9]*\.[0-9]*\).*/\1/p' | head -n 1)
THRESHOLDS = Thresholds/$(SWIFT_TOOLCHAIN)
bench: bootstrap
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark baseline check \
		--metric mallocCountTotal --check-absolute-path $(THRESHOLDS) --no-progress

## bench-thresholds: record the current p90 malloc counts as this toolchain's thresholds
bench-thresholds: bootstrap
	cd Benchmarks && $(SWIFT) package --disable-sandbox --allow-writing-to-package-directory benchmark \
		--metric mallocCountTotal --format metricP90AbsoluteThresholds --path $(THRESHOLDS) --no-progress
	@# The exporter writes spaces in benchmark names as '_', the checker looks for the names as they are.
	cd Benchmarks/$(THRESHOLDS) && for f in *_*.p90.json; do [ -e "$$f" ] && mv -f "$$f" "$$(echo "$$f" | tr '_' ' ')"; done; true

## fuzz: libFuzzer on the frame decoder and simple deserializer for SECONDS seconds
fuzz: bootstrap
	scripts/fuzz.sh $(SECONDS)

## asan: the loop and transport suites under AddressSanitizer (leaks included)
asan: bootstrap
	scripts/asan.sh

format:
	$(SWIFT) format -i -r Sources Tests Benchmarks/Benchmarks Package.swift

clean:
	rm -rf .build Benchmarks/.build
