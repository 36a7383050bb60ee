import Dispatch
import MotanCodec
import MotanHarness
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

#if canImport(Glibc)
    import Glibc
#endif

private final class Weak<T: AnyObject>: @unchecked Sendable {
    weak var value: T?
    init(_ value: T?) { self.value = value }
}

@Suite("Transport lifecycle hardening", .serialized)
struct LifecycleHardeningTests {
    /// Builds an endpoint with every kind of per-loop state (a pending call on the wheel, a probe,
    /// an idle watch), shuts the group down and drops every strong reference; returns weak ones.
    private func abandonedEndpoint(hole: BlackHoleServer) async throws
        -> (loop: Weak<UVEventLoop>, endpoint: Weak<ClientEndpoint>, manager: Weak<HeartbeatManager>)
    {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "abandoned")
        let endpoint = ClientEndpoint(
            address: hole.address, loop: group.loops[0],
            configuration: .init(
                failureThreshold: 1, heartbeatTimeout: .seconds(30), keepaliveIdleInterval: .seconds(30)))
        // Held unanswered: its deadline sits on the wheel. A forced failure starts the probes.
        endpoint.loop.execute {
            endpoint.call(service: "s", method: "m", timeout: .seconds(60)) { _ in }
            endpoint.call(service: "s", method: "m", timeout: .milliseconds(1)) { _ in }
        }
        #expect(await eventually { !endpoint.isAvailable })
        #expect(endpoint.heartbeatManager.probedEndpointCount == 1)
        let refs = (Weak(group.loops[0]), Weak(endpoint), Weak(endpoint.heartbeatManager))
        await group.shutdown()
        return refs
    }

    @Test("after group shutdown and release, no loop, endpoint or heartbeat manager stays alive")
    func nothingOutlivesTheLoop() async throws {
        let hole = try BlackHoleServer()
        defer { hole.shutdown() }
        let (loop, endpoint, manager) = try await abandonedEndpoint(hole: hole)
        // The loop thread lets go of its loop a moment after shutdown returns.
        #expect(await eventually { loop.value == nil && endpoint.value == nil && manager.value == nil })
        #expect(loop.value == nil, "the loop outlived its group")
        #expect(endpoint.value == nil, "the endpoint outlived its loop")
        #expect(manager.value == nil, "the heartbeat manager outlived its loop")
    }

    @Test("a loop's services are made once per loop and differ between loops")
    func servicesPerLoop() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        #expect(HeartbeatManager.of(group.loops[0]) === HeartbeatManager.of(group.loops[0]))
        #expect(HeartbeatManager.of(group.loops[0]) !== HeartbeatManager.of(group.loops[1]))
    }

    @Test("close() async ends pending calls; a blocking close from another loop's thread is refused")
    func asyncClose() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address)
        let outcomes = await holdCalls(3, on: endpoint, at: server)
        await endpoint.close()
        #expect(outcomes.value.count == 3)
        #expect(outcomes.value.allSatisfy { if case .failure(.endpointClosed) = $0 { true } else { false } })
        await endpoint.close()
        // The heartbeat manager's accessors have async forms too.
        #expect(await client.manager.timerRunning() == false)
        #expect(await client.manager.probedEndpoints() == 0)

        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            let endpoint = ClientEndpoint(address: TCPAddress(host: "127.0.0.1", port: 1), loop: b.loops[0])
            a.loops[0].runSync { endpoint.close() }
        }
        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            let manager = HeartbeatManager.of(b.loops[0])
            _ = a.loops[0].runSync { manager.isTimerRunning }
        }
    }

    @Test("harness loaders answer on a loop that has shut down", .timeLimit(.minutes(1)))
    func harnessOnDeadLoop() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let group = UVEventLoopGroup(numberOfLoops: 1)
        let endpoint = ClientEndpoint(address: server.address, loop: group.loops[0])
        await group.shutdown()
        let result = await RPCLoad.run(
            endpoint: endpoint, service: TestService.name, method: "echo", arguments: ["x"], calls: 10)
        #expect(result.error == .loopShutDown)
        #expect(result.succeeded == 0)
        await #expect(throws: LoopError.loopShutDown) {
            _ = try await EchoLoad.run(address: server.address, group: group, roundTrips: 10)
        }
    }

    @Test("a harness session whose loop shut down reports it instead of waiting forever", .timeLimit(.minutes(1)))
    func echoSessionOnDeadLoop() async throws {
        let serverGroup = UVEventLoopGroup(numberOfLoops: 1)
        defer { serverGroup.syncShutdown() }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: serverGroup) { _ in
            LengthPrefixedEchoHandler()
        }
        defer { server.close() }
        let clientGroup = UVEventLoopGroup(numberOfLoops: 1)
        let session = try await EchoLoadSession.connect(to: server.address, group: clientGroup)
        #expect(try await session.run(roundTrips: 10, timeLimit: .seconds(5)) == 10)
        await clientGroup.shutdown()
        await #expect(throws: LoopError.loopShutDown) {
            _ = try await session.run(roundTrips: 10, timeLimit: .seconds(5))
        }
        #expect(throws: LoopError.loopShutDown) { _ = try session.runBlocking(roundTrips: 10, timeLimit: .seconds(5)) }
        _ = session.histogram()
        session.close()
    }
}

@Suite("Raw echo baseline")
struct LengthPrefixedEchoTests {
    /// Frames of a few sizes, including an empty one, as one byte stream.
    private static func stream() -> [UInt8] {
        var bytes: [UInt8] = []
        for (index, size) in [5, 0, 1, 300, 17].enumerated() {
            withUnsafeBytes(of: UInt32(size).bigEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
        }
        return bytes
    }

    @Test(
        "frames split anywhere, headers byte by byte included, are all echoed",
        arguments: [1, 2, 3, 5, 7, 64])
    func splitFrames(pieceSize: Int) async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let handler = LengthPrefixedEchoHandler()
        let serverSide = Box<TCPConnection?>(nil)
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { connection in
            serverSide.mutate { $0 = connection }
            return handler
        }
        defer { server.close() }
        let client = try await BytePeer.connectCollecting(
            to: TCPAddress(host: "127.0.0.1", port: server.port), on: loop)
        #expect(await eventually { serverSide.value != nil })
        let stream = Self.stream()
        // Hand the handler the reads a peer could cause, piece by piece, on its loop: the kernel
        // decides how real reads split, so the test decides here instead.
        loop.execute {
            let connection = serverSide.value!
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + pieceSize)
                stream[offset..<end].withUnsafeBytes { handler.connectionDidRead(connection, $0) }
                offset = end
            }
        }
        #expect(await eventually { client.received.value.count >= stream.count })
        let echoed = client.received.value
        #expect(Bool(echoed == stream), "echoed \(echoed.count) of \(stream.count) bytes, or other bytes")
        client.close()
    }
}

/// A client that only collects the bytes it receives.
final class CollectingPeer: TCPConnectionDelegate, @unchecked Sendable {
    let received = Box<[UInt8]>([])
    private var connection: TCPConnection?
    let loop: UVEventLoop

    init(loop: UVEventLoop) { self.loop = loop }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        received.mutate { $0.append(contentsOf: bytes) }
    }
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}

    func attach(_ connection: TCPConnection) { loop.runSync { self.connection = connection } }
    func close() { loop.runSync { self.connection?.close() } }
}

extension BytePeer {
    static func connectCollecting(to address: TCPAddress, on loop: UVEventLoop) async throws -> CollectingPeer {
        let peer = CollectingPeer(loop: loop)
        let connection = try await TCPConnection.connect(to: address, on: loop, timeout: .seconds(5)) { peer }
        peer.attach(connection)
        return peer
    }
}

@Suite("Port ownership across processes", .serialized)
struct ServePortTests {
    @Test("a second motan serve on a port in use exits with an address-in-use error")
    func secondServeRefused() async throws {
        let first = try ServeProcess(loops: 2)
        defer { first.terminate() }
        do {
            let second = try ServeProcess(port: first.port, loops: 2)
            second.terminate()
            Issue.record("a second motan serve started on port \(first.port)")
        } catch let error as ServeProcessError {
            #expect("\(error)".contains("EADDRINUSE"), "\(error)")
        }
        // The first one still answers.
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(first.address)
        #expect(
            try await endpoint.call(
                service: "com.weibo.motan.demo.service.MotanDemoService", method: "echo", arguments: ["up"]) == "up")
        await endpoint.close()
    }
}
