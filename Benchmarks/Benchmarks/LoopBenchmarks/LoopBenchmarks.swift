import Benchmark
import BenchmarkSupport
import MotanHarness
import MotanLoop

/// A loopback echo of 64-byte length-prefixed frames over MotanLoop: server and client each on
/// their own loop thread. One benchmark iteration = 1,000 round trips (scaling factor kilo), so
/// per-round-trip figures are the reported ones divided by 1,000.
func printLatency(of rig: LoopbackEchoRig) {
    let h = rig.session.histogram()
    print(
        "  round-trip latency in the last iteration: p50 \(h.valueAtPercentile(50)) ns, "
            + "p99 \(h.valueAtPercentile(99)) ns, p99.9 \(h.valueAtPercentile(99.9)) ns, n=\(h.totalCount)")
}

let benchmarks: @Sendable () -> Void = {
    let configuration = RoundTrip.configuration

    for (name, connections, depth) in [
        ("echo 64B, 1 connection, closed loop", 1, 1),
        ("echo 64B, 16 connections x 16 pipelined", 16, 16),
    ] {
        nonisolated(unsafe) var rig: LoopbackEchoRig!
        Benchmark(name, configuration: configuration) { benchmark in
            rig.session.resetHistograms()
            benchmark.startMeasurement()
            let completed = try! rig.session.runBlocking(
                roundTrips: benchmark.scaledIterations.count, timeLimit: .seconds(10))
            benchmark.stopMeasurement()
            precondition(completed >= benchmark.scaledIterations.count - connections)
            let h = rig.session.histogram()
            benchmark.measurement(RoundTrip.p50, Int(h.valueAtPercentile(50)))
            benchmark.measurement(RoundTrip.p99, Int(h.valueAtPercentile(99)))
        } setup: {
            rig = try await LoopbackEchoRig(connections: connections, depth: depth)
        } teardown: {
            printLatency(of: rig)
            rig.shutdown()
            rig = nil
        }
    }
}
