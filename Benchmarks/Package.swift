// swift-tools-version:6.1
// A package of its own so that `make test` never resolves or builds the benchmark toolchain.
import PackageDescription

let package = Package(
    name: "swift-motan-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-motan", path: "../"),
        .package(
            url: "https://github.com/ordo-one/benchmark.git",
            from: "1.38.0",
            traits: ["MallocInterposer"]
        ),
    ],
    targets: [
        .target(
            name: "BenchmarkSupport",
            dependencies: [.product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/BenchmarkSupport"
        ),
        .executableTarget(
            name: "LoopBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MotanLoop", package: "swift-motan"),
                .product(name: "MotanHarness", package: "swift-motan"),
            ],
            path: "Benchmarks/LoopBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MotanCodec", package: "swift-motan"),
            ],
            path: "Benchmarks/CodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "TransportBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MotanTransport", package: "swift-motan"),
                .product(name: "MotanCodec", package: "swift-motan"),
                .product(name: "MotanLoop", package: "swift-motan"),
                .product(name: "MotanHarness", package: "swift-motan"),
            ],
            path: "Benchmarks/TransportBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "BenchHarnessBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MotanHarness", package: "swift-motan"),
                .product(name: "MotanLoop", package: "swift-motan"),
            ],
            path: "Benchmarks/BenchHarnessBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
