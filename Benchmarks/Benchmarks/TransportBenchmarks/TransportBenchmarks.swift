import Benchmark
import BenchmarkSupport
import Dispatch
import MotanCodec
import MotanHarness
import MotanLoop
import MotanTransport
import Synchronization

/// The echo service under test: the argument goes back as it came, on the loop.
let echoService = "bench.EchoService"

/// What the gzip benchmark answers: 1 KiB of text that compresses well, serialized once.
let compressibleAnswer: [UInt8] = {
    var bytes: [UInt8] = []
    SimpleSerialization.appendString(String(repeating: "motan gzip benchmark ", count: 49), into: &bytes)
    return bytes
}()

func echoRegistry() -> ServiceRegistry {
    var registry = ServiceRegistry()
    registry.handleRaw(service: echoService, method: "echo") { request, responder in
        responder.respond(passingThrough: request)
    }
    // The decoded form: the argument becomes a `SimpleValue` and is encoded again.
    registry.handle(service: echoService, method: "echoDecoded") { request, responder in
        responder.respond(request.arguments.first ?? .null)
    }
    registry.handleRaw(service: echoService, method: "text") { _, responder in
        responder.respond(writingBody: { $0.append(contentsOf: compressibleAnswer) })
    }
    return registry
}

/// A request carrying one string argument, 64 bytes unless said otherwise.
func echoRequest(method: String = "echo", argumentBytes: Int = 64) -> [UInt8] {
    var bytes: [UInt8] = []
    FrameEncoder.encodeRequest(requestID: 1, service: echoService, method: method, into: &bytes) {
        SimpleSerialization.appendString(String(repeating: "x", count: argumentBytes), into: &$0)
    }
    return bytes
}

func heartbeatRequest() -> [UInt8] {
    var bytes: [UInt8] = []
    FrameEncoder.encodeHeartbeatRequest(requestID: 1, into: &bytes)
    return bytes
}

/// Server and client each on their own loop thread, connected before anything is measured.
final class TransportRig: @unchecked Sendable {
    let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-server")
    let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-client")
    let server: ServerEndpoint
    let clients: [(MotanFrameLoadClient, TCPConnection)]

    init(
        connections: Int, depth: Int, request: [UInt8] = echoRequest(),
        configuration: ServerEndpoint.Configuration = .init()
    ) async throws {
        server = try ServerEndpoint(group: serverGroup, services: echoRegistry(), configuration: configuration)
        var clients: [(MotanFrameLoadClient, TCPConnection)] = []
        for _ in 0..<connections {
            let client = MotanFrameLoadClient(request: request, depth: depth)
            let connection = try await TCPConnection.connect(
                to: server.address, on: clientGroup.next(), timeout: .seconds(5)
            ) { client }
            clients.append((client, connection))
        }
        self.clients = clients
        _ = run(roundTrips: 20_000)
        reset()
    }

    /// About `roundTrips` round trips over all connections; blocks until they are done.
    func run(roundTrips: Int) -> Int {
        let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        let done = DispatchSemaphore(value: 0)
        let total = Mutex(0)
        let perConnection = max(1, roundTrips / clients.count)
        for (client, connection) in clients {
            connection.loop.execute {
                client.run(on: connection, roundTrips: perConnection, deadline: deadline) { completed in
                    total.withLock { $0 += completed }
                    done.signal()
                }
            }
        }
        for _ in clients { done.wait() }
        return total.withLock { $0 }
    }

    func reset() {
        for (client, connection) in clients { connection.loop.runSync { client.latencies.reset() } }
    }

    func percentiles() -> [UInt64] {
        let (client, connection) = clients[0]
        return connection.loop.runSync { client.latencies.percentiles([50, 99]) }
    }

    func shutdown() {
        for (_, connection) in clients { connection.loop.runSync { connection.close() } }
        server.close()
        clientGroup.syncShutdown()
        serverGroup.syncShutdown()
    }
}

/// The full client path: `ClientEndpoint.call` on its loop, closed loop, one connection.
final class EndpointRig: @unchecked Sendable {
    let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-server")
    let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-client")
    let server: ServerEndpoint
    let endpoint: ClientEndpoint
    let latencies = LatencyRecorder()
    let argument: [SimpleValue] = [.string(String(repeating: "x", count: 64))]

    init() async throws {
        server = try ServerEndpoint(group: serverGroup, services: echoRegistry())
        endpoint = ClientEndpoint(
            address: server.address, loop: clientGroup.loops[0], configuration: .init(connections: 1))
        _ = run(calls: 20_000)
        clientGroup.loops[0].runSync { self.latencies.reset() }
    }

    func run(calls: Int) -> Int {
        let done = DispatchSemaphore(value: 0)
        let loop = clientGroup.loops[0]
        loop.execute { self.next(remaining: calls, completed: 0, done: done) }
        done.wait()
        return calls
    }

    private func next(remaining: Int, completed: Int, done: DispatchSemaphore) {
        guard remaining > 0 else {
            done.signal()
            return
        }
        let start = DispatchTime.now().uptimeNanoseconds
        endpoint.call(service: echoService, method: "echo", arguments: argument) { result in
            precondition((try? result.get()) != nil, "echo call failed: \(result)")
            self.latencies.record(DispatchTime.now().uptimeNanoseconds - start)
            self.next(remaining: remaining - 1, completed: completed + 1, done: done)
        }
    }

    func percentiles() -> [UInt64] { clientGroup.loops[0].runSync { self.latencies.percentiles([50, 99]) } }
    func reset() { clientGroup.loops[0].runSync { self.latencies.reset() } }

    func shutdown() {
        endpoint.close()
        server.close()
        clientGroup.syncShutdown()
        serverGroup.syncShutdown()
    }
}

/// Median over iterations of each iteration's p50 and p99, printed exactly (the tables round).
final class MedianSummary: @unchecked Sendable {
    let name: String
    private var p50s: [UInt64] = []
    private var p99s: [UInt64] = []
    init(_ name: String) { self.name = name }
    func add(_ values: [UInt64]) {
        p50s.append(values[0])
        p99s.append(values[1])
    }
    func print() {
        guard !p50s.isEmpty else { return }
        let p50 = p50s.sorted()[p50s.count / 2]
        let p99 = p99s.sorted()[p99s.count / 2]
        Swift.print("  \(name): median p50 \(p50) ns, median p99 \(p99) ns over \(p50s.count) iterations")
        p50s.removeAll()
        p99s.removeAll()
    }
}

let benchmarks: @Sendable () -> Void = {
    let configuration = RoundTrip.configuration

    // Server paths that must not allocate per request once warm: the pass-through echo,
    // heartbeats, routing errors, and gzip answers through the loop's reused zlib streams.
    for (name, connections, depth, request, serverConfiguration) in [
        ("motan echo 64B, 1 connection, closed loop", 1, 1, echoRequest(), ServerEndpoint.Configuration()),
        ("motan echo 64B, 16 connections x 16 pipelined", 16, 16, echoRequest(), .init()),
        ("motan heartbeats, 16 connections x 16 pipelined", 16, 16, heartbeatRequest(), .init()),
        ("motan error (unknown method), 16 connections x 16 pipelined", 16, 16, echoRequest(method: "nope"), .init()),
        (
            "motan gzip answers 1 KiB, reused zlib streams, 16 connections x 16 pipelined", 16, 16,
            echoRequest(method: "text"), .init(gzipResponsesAbove: 256)
        ),
        // Decoded arguments land in reused storage and the answer is encoded in place: with an
        // argument short enough to be an inline String nothing is allocated; a 64-byte String
        // costs its one allocation.
        (
            "motan decoded echo 12B, 16 connections x 16 pipelined", 16, 16,
            echoRequest(method: "echoDecoded", argumentBytes: 12), .init()
        ),
        (
            "motan decoded echo 64B, 16 connections x 16 pipelined", 16, 16, echoRequest(method: "echoDecoded"),
            .init()
        ),
    ] {
        nonisolated(unsafe) var rig: TransportRig!
        let summary = MedianSummary(name)
        Benchmark(name, configuration: configuration) { benchmark in
            rig.reset()
            benchmark.startMeasurement()
            let completed = rig.run(roundTrips: benchmark.scaledIterations.count)
            benchmark.stopMeasurement()
            precondition(completed >= benchmark.scaledIterations.count - connections)
            let values = rig.percentiles()
            summary.add(values)
            benchmark.measurement(RoundTrip.p50, Int(values[0]))
            benchmark.measurement(RoundTrip.p99, Int(values[1]))
        } setup: {
            rig = try await TransportRig(
                connections: connections, depth: depth, request: request, configuration: serverConfiguration)
        } teardown: {
            summary.print()
            rig.shutdown()
            rig = nil
        }
    }

    nonisolated(unsafe) var endpointRig: EndpointRig!
    let endpointSummary = MedianSummary("motan echo 64B via ClientEndpoint, closed loop")
    Benchmark("motan echo 64B via ClientEndpoint, closed loop", configuration: configuration) { benchmark in
        endpointRig.reset()
        benchmark.startMeasurement()
        _ = endpointRig.run(calls: benchmark.scaledIterations.count)
        benchmark.stopMeasurement()
        let values = endpointRig.percentiles()
        endpointSummary.add(values)
        benchmark.measurement(RoundTrip.p50, Int(values[0]))
        benchmark.measurement(RoundTrip.p99, Int(values[1]))
    } setup: {
        endpointRig = try await EndpointRig()
    } teardown: {
        endpointSummary.print()
        endpointRig.shutdown()
        endpointRig = nil
    }

    for (name, connections, depth) in [
        ("raw libuv echo 64B, 1 connection, closed loop (baseline)", 1, 1),
        ("raw libuv echo 64B, 16 connections x 16 pipelined (baseline)", 16, 16),
    ] {
        nonisolated(unsafe) var rawRig: LoopbackEchoRig!
        let summary = MedianSummary(name)
        Benchmark(name, configuration: configuration) { benchmark in
            rawRig.session.resetHistograms()
            benchmark.startMeasurement()
            _ = try! rawRig.session.runBlocking(roundTrips: benchmark.scaledIterations.count, timeLimit: .seconds(10))
            benchmark.stopMeasurement()
            let histogram = rawRig.session.histogram()
            let values = [histogram.valueAtPercentile(50), histogram.valueAtPercentile(99)]
            summary.add(values)
            benchmark.measurement(RoundTrip.p50, Int(values[0]))
            benchmark.measurement(RoundTrip.p99, Int(values[1]))
        } setup: {
            rawRig = try await LoopbackEchoRig(connections: connections, depth: depth)
        } teardown: {
            summary.print()
            rawRig.shutdown()
            rawRig = nil
        }
    }
}
