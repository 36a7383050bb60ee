# The two commands a new user needs: `make run` and `make test`. Both install what is missing first.
SWIFT ?= swift
SECONDS ?= 60
TEST_FLAGS ?=

.PHONY: run test bench fuzz asan bootstrap bootstrap-test format clean

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

## bench: package-benchmark suites (a separate package, so `make test` never builds them)
bench: bootstrap
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark

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
