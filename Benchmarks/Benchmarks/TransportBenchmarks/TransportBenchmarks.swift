import Benchmark
import MotanTransport

let benchmarks: @Sendable () -> Void = {
    Benchmark("transport-placeholder") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(1) }
    }
}
