import Benchmark
import MotanHarness
import MotanLoop

/// A loopback echo of 64-byte length-prefixed frames over MotanLoop: server and client each on
/// their own loop thread. One benchmark iteration = 1,000 round trips (scaling factor kilo), so
/// per-round-trip figures are the reported ones divided by 1,000.
final class EchoRig: @unchecked Sendable {
    let serverGroup = EventLoopGroup(numberOfLoops: 1, namePrefix: "bench-server")
    let clientGroup = EventLoopGroup(numberOfLoops: 1, namePrefix: "bench-client")
    let server: TCPServer
    let session: EchoLoadSession

    init(connections: Int, depth: Int) async throws {
        server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: serverGroup) { _ in
            LengthPrefixedEchoHandler()
        }
        session = try await EchoLoadSession.connect(
            to: server.address, group: clientGroup, connections: connections, depth: depth, frameSize: 64)
        // Fill the pools and warm the caches before anything is measured.
        _ = session.runBlocking(roundTrips: 20_000, timeLimit: .seconds(10))
        session.resetHistograms()
    }

    func shutdown() {
        let h = session.histogram()
        print(
            "  round-trip latency over all iterations: p50 \(h.valueAtPercentile(50)) ns, "
                + "p99 \(h.valueAtPercentile(99)) ns, p99.9 \(h.valueAtPercentile(99.9)) ns, n=\(h.totalCount)"
        )
        session.close()
        server.close()
        clientGroup.syncShutdown()
        serverGroup.syncShutdown()
    }
}

let p50 = BenchmarkMetric.custom(
    "round trip p50 (ns)", polarity: .prefersSmaller, useScalingFactor: false)
let p99 = BenchmarkMetric.custom(
    "round trip p99 (ns)", polarity: .prefersSmaller, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, p50, p99],
        warmupIterations: 5,
        scalingFactor: .kilo,
        maxDuration: .seconds(5),
        maxIterations: 2_000
    )

    for (name, connections, depth) in [
        ("echo 64B, 1 connection, closed loop", 1, 1),
        ("echo 64B, 16 connections x 16 pipelined", 16, 16),
    ] {
        nonisolated(unsafe) var rig: EchoRig!
        Benchmark(name, configuration: configuration) { benchmark in
            rig.session.resetHistograms()
            benchmark.startMeasurement()
            let completed = rig.session.runBlocking(
                roundTrips: benchmark.scaledIterations.count, timeLimit: .seconds(10))
            benchmark.stopMeasurement()
            precondition(completed >= benchmark.scaledIterations.count - connections)
            let h = rig.session.histogram()
            benchmark.measurement(p50, Int(h.valueAtPercentile(50)))
            benchmark.measurement(p99, Int(h.valueAtPercentile(99)))
        } setup: {
            rig = try await EchoRig(connections: connections, depth: depth)
        } teardown: {
            rig.shutdown()
            rig = nil
        }
    }
}
