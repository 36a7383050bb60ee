import Benchmark
import BenchmarkSupport
import MotanHarness
import MotanLoop

/// `motan bench`'s own client path (pre-encoded requests, slot table, header-only response scan,
/// per-loop histogram) against the embedded echo server, each on its own loop thread. One
/// iteration = 1,000 requests (scaling factor kilo): the malloc count per iteration divided by
/// 1,000 is what the harness costs per request, and must stay at zero in steady state.
final class BenchHarnessRig: @unchecked Sendable {
    let server: BenchEmbeddedServer
    let session: BenchLoadSession

    init(connections: Int, depth: Int) async throws {
        server = try BenchEmbeddedServer(
            service: BenchConfiguration.defaultService, method: BenchConfiguration.defaultMethod)
        session = try await BenchLoadSession.connect(to: server.address, connections: connections, depth: depth)
        // Fill the pools and warm the caches before anything is measured.
        _ = session.runBlocking(requests: 20_000)
    }

    func shutdown() {
        session.close()
        server.shutdown()
    }
}

let benchmarks: @Sendable () -> Void = {
    let configuration = RoundTrip.configuration

    for (name, connections, depth) in [
        ("motan bench client 64B, 1 connection, closed loop", 1, 1),
        ("motan bench client 64B, 16 connections x 16 pipelined", 16, 16),
    ] {
        nonisolated(unsafe) var rig: BenchHarnessRig!
        Benchmark(name, configuration: configuration) { benchmark in
            benchmark.startMeasurement()
            let succeeded = rig.session.runBlocking(requests: benchmark.scaledIterations.count)
            benchmark.stopMeasurement()
            precondition(succeeded == benchmark.scaledIterations.count, "echo requests failed")
            let h = rig.session.histogram()
            benchmark.measurement(RoundTrip.p50, Int(h.valueAtPercentile(50)))
            benchmark.measurement(RoundTrip.p99, Int(h.valueAtPercentile(99)))
        } setup: {
            rig = try await BenchHarnessRig(connections: connections, depth: depth)
        } teardown: {
            rig.shutdown()
            rig = nil
        }
    }
}
