import Benchmark

/// Metrics and settings shared by the round-trip benchmarks: one iteration = 1,000 round trips
/// (scaling factor kilo), so per-round-trip figures are the reported ones divided by 1,000, and
/// each iteration also reports the p50/p99 of its own round trips.
public enum RoundTrip {
    public static let p50 = BenchmarkMetric.custom(
        "round trip p50 (ns)", polarity: .prefersSmaller, useScalingFactor: false)
    public static let p99 = BenchmarkMetric.custom(
        "round trip p99 (ns)", polarity: .prefersSmaller, useScalingFactor: false)

    public static var configuration: Benchmark.Configuration {
        Benchmark.Configuration(
            metrics: [.wallClock, .throughput, .mallocCountTotal, p50, p99],
            warmupIterations: 5,
            scalingFactor: .kilo,
            maxDuration: .seconds(5),
            maxIterations: 2_000,
            // Checked against Thresholds/<toolchain>: pool warm-up and batch hand-offs move the
            // count per 1,000 round trips by a few; one extra malloc per round trip moves it by 1,000.
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 25])]
        )
    }
}
