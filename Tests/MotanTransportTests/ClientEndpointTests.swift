import MotanCodec
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

/// A client loop with a fast heartbeat manager, and endpoints that record their events.
final class TestClient: @unchecked Sendable {
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "test-client")
    let manager: HeartbeatManager
    let events = Box<[EndpointEvent]>([])
    /// The same events with the time each was delivered, for checks of when something happened.
    let timedEvents = Box<[(event: EndpointEvent, at: ContinuousClock.Instant)]>([])

    init(
        probe: HeartbeatManager.Configuration = .init(
            period: .milliseconds(50), maxBackoff: .milliseconds(200))
    ) {
        manager = HeartbeatManager.of(group.loops[0], configuration: probe)
    }

    var loop: UVEventLoop { group.loops[0] }

    func endpoint(
        _ address: TCPAddress, configure: (inout ClientEndpoint.Configuration) -> Void = { _ in }
    ) -> ClientEndpoint {
        let events = self.events
        let timedEvents = self.timedEvents
        var configuration = ClientEndpoint.Configuration(
            requestTimeout: .seconds(2), heartbeatTimeout: .milliseconds(300),
            onEvent: { event in
                let now = ContinuousClock.now
                events.mutate { $0.append(event) }
                timedEvents.mutate { $0.append((event, now)) }
            })
        configure(&configuration)
        return ClientEndpoint(address: address, loop: loop, configuration: configuration)
    }

    var stateChanges: [EndpointEvent] {
        events.value.filter {
            switch $0 {
            case .becameAvailable, .becameUnavailable: return true
            default: return false
            }
        }
    }

    func shutdown() { group.syncShutdown() }

    /// When the endpoint first reported itself unavailable.
    var firstUnavailableAt: ContinuousClock.Instant? {
        timedEvents.value.first { $0.event.isUnavailable }?.at
    }
}

/// Makes `count` calls the server holds unanswered; returns where their outcomes will land once
/// the server has them all.
func holdCalls(_ count: Int, on endpoint: ClientEndpoint, at server: TestServer) async
    -> Box<[Result<SimpleValue, TransportError>]>
{
    let outcomes = Box<[Result<SimpleValue, TransportError>]>([])
    endpoint.loop.execute {
        for _ in 0..<count {
            endpoint.call(service: TestService.name, method: "hold", timeout: .seconds(30)) { outcome in
                outcomes.mutate { $0.append(outcome) }
            }
        }
    }
    #expect(await eventually { server.held.value.count == count })
    return outcomes
}

extension EndpointEvent {
    var isUnavailable: Bool {
        if case .becameUnavailable = self { return true }
        return false
    }
    var isAvailable: Bool {
        if case .becameAvailable = self { return true }
        return false
    }
}

@Suite("Client endpoint")
struct ClientEndpointTests {
    @Test("async and loop-callback calls return the decoded value; remote errors are typed")
    func calls() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address)
        defer { endpoint.close() }

        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["a"]) == "a")
        #expect(
            try await endpoint.call(service: TestService.name, method: "echoAsync", arguments: [.int32(5)])
                == .int32(5))
        await #expect(throws: TransportError.remote(MotanErrorInfo(errcode: 500, errmsg: "boom", errtype: 2))) {
            try await endpoint.call(service: TestService.name, method: "throw", arguments: ["boom"])
        }
        await #expect(
            throws: TransportError.remote(
                MotanErrorInfo(errcode: 404, errmsg: "provider not exist serviceKey=no.Such", errtype: 1))
        ) {
            try await endpoint.call(service: "no.Such", method: "echo")
        }

        let result = Box<Result<SimpleValue, TransportError>?>(nil)
        endpoint.loop.execute {
            endpoint.call(service: TestService.name, method: "echo", arguments: ["loop"]) { outcome in
                result.mutate { $0 = outcome }
            }
        }
        #expect(await eventually { result.value != nil })
        #expect(try result.value?.get() == "loop")
        #expect(endpoint.isAvailable)
    }

    @Test("a call without a response times out once, on the wheel, and a late answer is dropped")
    func timeout() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address)
        defer { endpoint.close() }
        let outcomes = Box<[Result<SimpleValue, TransportError>]>([])
        endpoint.loop.execute {
            for _ in 0..<5 {
                endpoint.call(service: TestService.name, method: "hold", timeout: .milliseconds(60)) { outcome in
                    outcomes.mutate { $0.append(outcome) }
                }
            }
        }
        #expect(await eventually { outcomes.value.count == 5 })
        for outcome in outcomes.value {
            #expect(throws: TransportError.timeout(milliseconds: 60)) { try outcome.get() }
        }
        // Answers that arrive after the timeout must not complete anything a second time.
        server.releaseHeld()
        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["x"]) == "x")
        #expect(outcomes.value.count == 5)
        // Five timeouts are below the threshold of ten.
        #expect(endpoint.isAvailable)
    }

    @Test("when the connection drops, every pending call on it fails at once")
    func dropFailsPending() async throws {
        let server = try TestServer()
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) { $0.failureThreshold = 0 }
        defer { endpoint.close() }
        let outcomes = await holdCalls(20, on: endpoint, at: server)
        server.shutdown()
        #expect(await eventually(timeout: .seconds(5)) { outcomes.value.count == 20 })
        for outcome in outcomes.value {
            guard case .failure(.connectionClosed) = outcome else {
                Issue.record("expected connectionClosed, got \(outcome)")
                continue
            }
        }
    }

    @Test("shutting the client's loop down ends pending calls; later calls and close() return at once")
    func loopShutdownEndsCalls() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        let endpoint = client.endpoint(server.address) { $0.failureThreshold = 0 }
        let outcomes = await holdCalls(10, on: endpoint, at: server)
        client.shutdown()
        // Every pending call ended with the connection the shutdown closed, exactly once.
        #expect(outcomes.value.count == 10)
        for outcome in outcomes.value {
            guard case .failure(.connectionClosed(.loopShutdown)) = outcome else {
                Issue.record("expected connectionClosed(loopShutdown), got \(outcome)")
                continue
            }
        }
        // The loop is gone: a new call is refused at once instead of waiting forever.
        await #expect(throws: TransportError.endpointClosed) {
            try await endpoint.call(service: TestService.name, method: "echo", arguments: ["x"])
        }
        await endpoint.close()
        #expect(client.manager.isTimerRunning == false)
    }

    @Test("every call ends exactly once: answers, remote errors, timeouts and a drop, mixed")
    func exactlyOnce() async throws {
        let server = try TestServer()
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) { $0.failureThreshold = 0 }
        defer { endpoint.close() }
        let count = 600
        let completions = Box([Int](repeating: 0, count: count))
        let methods = ["echo", "notExist", "hold", "echoAsync", "throw", "sleep"]
        let longTimeout = Duration.seconds(2)
        let issued = ContinuousClock.now
        endpoint.loop.execute {
            for index in 0..<count {
                let method = methods[index % methods.count]
                endpoint.call(
                    service: TestService.name, method: method,
                    arguments: method == "sleep" ? [.int64(5)] : ["x"],
                    timeout: index % 4 == 2 ? .milliseconds(50) : longTimeout
                ) { _ in completions.mutate { $0[index] += 1 } }
            }
        }
        // Quick calls finish and the short timeouts fire; then the connection drops under the rest.
        #expect(await eventually { completions.value.filter { $0 > 0 }.count == count - 50 })
        server.shutdown()
        #expect(await eventually { completions.value.allSatisfy { $0 >= 1 } })
        // Late answers, the close and every deadline on the wheel (the last is due `longTimeout`
        // after the calls went out) must not complete anything a second time: watch until all
        // of them have had their chance.
        try await Task.sleep(until: issued + longTimeout + .milliseconds(300))
        let twice = completions.value.indices.filter { completions.value[$0] != 1 }
        #expect(twice.isEmpty, "calls not completed exactly once: \(twice.prefix(10))")
        #expect(endpoint.loop.runSync { endpoint.pendingCount } == 0)
    }

    @Test("business exceptions do not count; other failures add up to unavailable")
    func weightedCount() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address)
        defer { endpoint.close() }
        for _ in 0..<9 {
            _ = try? await endpoint.call(service: TestService.name, method: "notExist")
        }
        // A business exception resets the count, so nine more framework errors stay below ten.
        _ = try? await endpoint.call(service: TestService.name, method: "businessError")
        for _ in 0..<9 {
            _ = try? await endpoint.call(service: TestService.name, method: "notExist")
        }
        #expect(endpoint.isAvailable)
        #expect(!client.manager.isTimerRunning)
        // The tenth in a row fuses it.
        _ = try? await endpoint.call(service: TestService.name, method: "notExist")
        #expect(!endpoint.isAvailable)
        await #expect(throws: TransportError.unavailable(endpoint: endpoint.address.description)) {
            try await endpoint.call(service: TestService.name, method: "echo")
        }
        // The server is healthy, so the first heartbeat revives it, and the timer stops again.
        #expect(await eventually { endpoint.isAvailable })
        #expect(await eventually { !client.manager.isTimerRunning })
        #expect(client.stateChanges.count == 2)
        #expect(client.events.value.contains(.heartbeatAnswered(keepalive: false)))
    }

    @Test("server gone: unavailable at the threshold, fails fast, revived by a probe after restart")
    func serverDownAndBack() async throws {
        var server: TestServer? = try TestServer()
        let port = server!.port
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(TCPAddress(host: "127.0.0.1", port: port)) {
            $0.reconnectDelay = .seconds(10)
        }
        defer { endpoint.close() }
        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["up"]) == "up")
        #expect(!client.manager.isTimerRunning)
        server?.shutdown()
        server = nil

        var failures: [TransportError] = []
        while endpoint.isAvailable && failures.count < 20 {
            do {
                _ = try await endpoint.call(service: TestService.name, method: "echo")
            } catch {
                failures.append(error)
            }
        }
        #expect(!endpoint.isAvailable)
        // Maybe one call lost with the closing connection (+1), two refused connects (+2 each), then
        // no connection (+3 each): the threshold of 10 is reached within 5 calls.
        #expect(failures.count <= 5)
        #expect(failures.contains { if case .noConnection = $0 { true } else { false } })
        #expect(client.manager.isTimerRunning)
        #expect(client.manager.probedEndpointCount == 1)
        await #expect(throws: TransportError.unavailable(endpoint: endpoint.address.description)) {
            try await endpoint.call(service: TestService.name, method: "echo")
        }
        // Let a few probes fail, then bring the server back on the same port.
        #expect(
            await eventually {
                client.events.value.filter { if case .heartbeatFailed = $0 { true } else { false } }.count >= 2
            })
        let restarted = try TestServer(configuration: .init(port: port))
        defer { restarted.shutdown() }
        // One probe period plus the capped backoff step (200 ms) and jitter.
        #expect(await eventually(timeout: .seconds(2)) { endpoint.isAvailable })
        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["back"]) == "back")
        #expect(await eventually { !client.manager.isTimerRunning })
        #expect(client.stateChanges.map(\.isUnavailable) == [true, false])
    }

    @Test("a closed endpoint is no longer probed, and the timer stops at once")
    func removedEndpointStopsProbing() async throws {
        let client = TestClient()
        defer { client.shutdown() }
        let port = try unusedPort()
        let endpoint = client.endpoint(TCPAddress(host: "127.0.0.1", port: port))
        for _ in 0..<6 where endpoint.isAvailable {
            _ = try? await endpoint.call(service: TestService.name, method: "echo")
        }
        #expect(!endpoint.isAvailable)
        #expect(client.manager.probedEndpointCount == 1)
        #expect(client.manager.isTimerRunning)
        await endpoint.close()
        #expect(client.manager.probedEndpointCount == 0)
        #expect(!client.manager.isTimerRunning)
        await #expect(throws: TransportError.endpointClosed) {
            try await endpoint.call(service: TestService.name, method: "echo")
        }
    }

    @Test("idle keepalive is off by default: a silent healthy connection gets no heartbeats")
    func keepaliveOffByDefault() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address)
        defer { endpoint.close() }
        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["a"]) == "a")
        #expect(!client.manager.isTimerRunning)
        try await Task.sleep(for: .milliseconds(200))
        #expect(server.server.statistics.heartbeatsAnswered == 0)
        #expect(!client.events.value.contains(.heartbeatSent(keepalive: true)))
    }

    @Test("idle keepalive answered by a live server keeps the endpoint available")
    func keepaliveAnswered() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) { $0.keepaliveIdleInterval = .milliseconds(60) }
        defer { endpoint.close() }
        #expect(try await endpoint.call(service: TestService.name, method: "echo", arguments: ["a"]) == "a")
        #expect(await eventually { server.server.statistics.heartbeatsAnswered >= 2 })
        #expect(endpoint.isAvailable)
        #expect(client.events.value.contains(.heartbeatAnswered(keepalive: true)))
        #expect(client.manager.isTimerRunning)
        await endpoint.close()
        #expect(!client.manager.isTimerRunning)
    }

    @Test("idle keepalive finds a black-holed connection within idle interval + heartbeat timeout")
    func keepaliveBlackHole() async throws {
        let hole = try BlackHoleServer()
        defer { hole.shutdown() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(hole.address) {
            $0.keepaliveIdleInterval = .milliseconds(100)
            $0.heartbeatTimeout = .milliseconds(100)
        }
        defer { endpoint.close() }
        // One call opens the connection; its timeout alone stays far below the threshold.
        await #expect(throws: TransportError.timeout(milliseconds: 50)) {
            try await endpoint.call(service: TestService.name, method: "echo", timeout: .milliseconds(50))
        }
        #expect(hole.accepted.value >= 1)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(await eventually(timeout: .seconds(5)) { !endpoint.isAvailable })
        // idle 100 ms + timeout 100 ms + one manager period (50 ms) + wheel tick; the rest of the
        // bound is slack for a loaded machine, and still far below the wait above.
        let detected = try #require(client.firstUnavailableAt) - start
        #expect(detected < .milliseconds(1000), "unavailable after \(detected)")
        let reason = client.stateChanges.first.map { "\($0)" } ?? ""
        #expect(reason.contains("keepalive"))
    }
}

/// A port nothing listens on (bound once, then released).
func unusedPort() throws -> Int {
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "port-probe")
    defer { group.syncShutdown() }
    let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in nil }
    let port = server.port
    server.close()
    return port
}
