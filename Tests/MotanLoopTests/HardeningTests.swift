import Dispatch
import Foundation
import MotanLoop
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Loop hardening")
struct LoopHardeningTests {
    @Test(
        "a loop shut down while connects are in progress closes each connect timer once and answers each connect",
        .timeLimit(.minutes(1)))
    func shutdownWhileConnecting() async throws {
        // A full accept queue leaves later handshakes unfinished, so their connects (and connect
        // timers) are still open when the loop shuts down.
        let listener = RawSocket(listenBacklog: 0)
        defer { listener.close() }
        let address = TCPAddress(host: "127.0.0.1", port: listener.port)
        let group = UVEventLoopGroup(numberOfLoops: 1)
        let loop = group.loops[0]
        let outcomes = Locked<[Result<TCPConnection, LoopError>]>([])
        loop.execute {
            for _ in 0..<6 {
                TCPConnection.connect(to: address, on: loop, timeout: .seconds(30), delegate: EchoDelegate()) {
                    result in outcomes.withLock { $0.append(result) }
                }
            }
        }
        // Some connects complete into the queue; the rest stay in SYN_SENT.
        try await Task.sleep(for: .milliseconds(100))
        let before = outcomes.withLock { $0.count }
        #expect(before < 6, "the accept queue took every connect; nothing was left connecting")
        group.syncShutdown()
        let after = outcomes.withLock { $0 }
        #expect(after.count == 6)
        let shutDown = after.filter { if case .failure(.loopShutDown) = $0 { true } else { false } }
        #expect(shutDown.count == 6 - before)
    }

    @Test("async connect on a loop that has shut down throws loopShutDown", .timeLimit(.minutes(1)))
    func connectAfterShutdown() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        let loop = group.loops[0]
        group.syncShutdown()
        await #expect(throws: LoopError.loopShutDown) {
            _ = try await TCPConnection.connect(
                to: TCPAddress(host: "127.0.0.1", port: closedPort()), on: loop, timeout: .seconds(1)
            ) { EchoDelegate() }
        }
    }

    @Test("async forms: group shutdown, loop shutdown and server close return without blocking a thread")
    func asyncForms() async throws {
        let fixture = try ServerFixture(loops: 2)
        await fixture.server.close()
        // Closed: a new connect is refused.
        await #expect(throws: LoopError.self) {
            _ = try await fixture.connect { EchoDelegate() }
        }
        await fixture.loop.shutdown()
        #expect(fixture.loop.isShutDown)
        await fixture.group.shutdown()
        #expect(fixture.group.loops.allSatisfy { $0.isShutDown })
        // Shutting down again, or closing again, returns at once.
        await fixture.group.shutdown()
        await fixture.server.close()
        fixture.group.syncShutdown()
    }

    @Test("every loop thread knows it is one; other threads are not")
    func loopThreadMarker() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        #expect(!UVEventLoop.isLoopThread)
        #expect(group.loops[0].runSync { UVEventLoop.isLoopThread && UVEventLoop.current === group.loops[0] })
        #expect(group.loops[1].runSync { UVEventLoop.current === group.loops[1] })
    }

    @Test("blocking calls from any loop thread stop with a precondition, not a deadlock")
    func blockingFormsRefuseLoopThreads() async {
        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            _ = a.loops[0].runSync { b.loops[0].tryRunSync { 1 } }
        }
        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            a.loops[0].runSync { b.syncShutdown() }
        }
        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            let server = try? TCPServer.bind(host: "127.0.0.1", port: 0, on: b) { _ in nil }
            a.loops[0].runSync { server?.close() }
        }
        await #expect(processExitsWith: .failure) {
            let a = UVEventLoopGroup(numberOfLoops: 1)
            let b = UVEventLoopGroup(numberOfLoops: 1)
            a.loops[0].runSync { _ = try? TCPServer.bind(host: "127.0.0.1", port: 0, on: b) { _ in nil } }
        }
    }

    @Test("a connection's state cannot be read off its loop")
    func connectionStateIsLoopChecked() async {
        await #expect(processExitsWith: .failure) {
            let group = UVEventLoopGroup(numberOfLoops: 1)
            let server = try? TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
            let loop = group.loops[0]
            let box = Locked<TCPConnection?>(nil)
            let done = DispatchSemaphore(value: 0)
            loop.execute {
                TCPConnection.connect(
                    to: server!.address, on: loop, timeout: .seconds(5), delegate: EchoDelegate()
                ) { result in
                    box.withLock { $0 = try? result.get() }
                    done.signal()
                }
            }
            done.wait()
            _ = box.withLock { $0 }?.state
        }
        await #expect(processExitsWith: .failure) {
            let group = UVEventLoopGroup(numberOfLoops: 1)
            let server = try? TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
            let loop = group.loops[0]
            let box = Locked<TCPConnection?>(nil)
            let done = DispatchSemaphore(value: 0)
            loop.execute {
                TCPConnection.connect(
                    to: server!.address, on: loop, timeout: .seconds(5), delegate: EchoDelegate()
                ) { result in
                    box.withLock { $0 = try? result.get() }
                    done.signal()
                }
            }
            done.wait()
            _ = box.withLock { $0 }?.pendingWriteBytes
        }
    }

    @Test("a snapshot of a connection's state is readable from any thread")
    func connectionSnapshot() async throws {
        let fixture = try ServerFixture()
        defer { fixture.shutdown() }
        let connection = try await fixture.connect { CollectingDelegate() }
        let open = try await connection.snapshot()
        #expect(open.state == .open && open.isWritable && open.pendingWriteBytes == 0 && open.closeReason == nil)
        fixture.loop.runSync { connection.close(.protocolViolation("done")) }
        try await Task.sleep(for: .milliseconds(20))
        let closed = try await connection.snapshot()
        #expect(closed.state == .closed && closed.closeReason == .protocolViolation("done"))
    }
}

@Suite("Port ownership", .serialized)
struct PortOwnershipTests {
    @Test("a second server on a bound port fails with EADDRINUSE; the first keeps serving on both loops")
    func secondServerRefused() async throws {
        let connectionsPerLoop = Locked([0, 0])
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { connection in
            let index = group.loops.firstIndex { $0 === connection.loop }!
            connectionsPerLoop.withLock { $0[index] += 1 }
            return EchoDelegate()
        }
        defer { server.close() }

        let other = UVEventLoopGroup(numberOfLoops: 2)
        defer { other.syncShutdown() }
        do {
            let second = try TCPServer.bind(host: "127.0.0.1", port: server.port, on: other) { _ in EchoDelegate() }
            await second.close()
            Issue.record("a second server bound port \(server.port), which is in use")
        } catch {
            guard case .bindFailed(_, let cause) = error else {
                Issue.record("expected bindFailed, got \(error)")
                return
            }
            #expect(cause.name == "EADDRINUSE")
        }
        #expect(other.loops[0].runSync { other.loops[0].liveHandleCount() } == 0)

        // The first server still answers, and the kernel still spreads its connections over both loops.
        let clients = UVEventLoopGroup(numberOfLoops: 1)
        defer { clients.syncShutdown() }
        var connections: [TCPConnection] = []
        for _ in 0..<64 {
            connections.append(
                try await TCPConnection.connect(to: server.address, on: clients.loops[0], timeout: .seconds(5)) {
                    EchoDelegate()
                })
        }
        let collector = CollectingDelegate()
        let probe = try await TCPConnection.connect(to: server.address, on: clients.loops[0], timeout: .seconds(5)) {
            collector
        }
        let fixture = ServerFixture.Echo(loop: clients.loops[0])
        #expect(await fixture.roundTrip(Array("still here".utf8), on: probe, collector) == Array("still here".utf8))
        // Accepts run on the server's loops, after the client's connects completed: wait for them (bounded).
        for _ in 0..<500 where connectionsPerLoop.withLock({ $0.reduce(0, +) }) < 65 {
            try await Task.sleep(for: .milliseconds(10))
        }
        clients.loops[0].runSync {
            for connection in connections { connection.close() }
            probe.close()
        }
        let spread = connectionsPerLoop.withLock { $0 }
        #expect(spread.reduce(0, +) == 65)
        #expect(spread.allSatisfy { $0 > 0 }, "connections per loop: \(spread)")
    }

    @Test("port 0 always gets a port of its own; the check covers IPv6 and the wildcard address too")
    func portZeroAndOtherAddresses() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let first = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        let second = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        #expect(first.port != second.port)
        for host in ["127.0.0.1", "0.0.0.0"] {
            #expect(throws: LoopError.self, "\(host):\(first.port)") {
                try TCPServer.bind(host: host, port: first.port, on: group) { _ in nil }
            }
        }
        await first.close()
        await second.close()
        let v6 = try TCPServer.bind(host: "::1", port: 0, on: group) { _ in EchoDelegate() }
        #expect(throws: LoopError.self) { try TCPServer.bind(host: "::1", port: v6.port, on: group) { _ in nil } }
        await v6.close()
        #expect(group.loops[0].runSync { group.loops[0].liveHandleCount() } == 0)
    }

    @Test("a port freed by a closed server can be bound again at once")
    func rebindAfterClose() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let first = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        let port = first.port
        // A connection leaves the server's side in TIME_WAIT once the server closes it first.
        let collector = CollectingDelegate()
        let connection = try await TCPConnection.connect(
            to: first.address, on: group.loops[0], timeout: .seconds(5)
        ) { collector }
        _ = await ServerFixture.Echo(loop: group.loops[0]).roundTrip([1, 2, 3], on: connection, collector)
        group.loops[0].runSync { connection.close() }
        await first.close()
        let second = try TCPServer.bind(host: "127.0.0.1", port: port, on: group) { _ in EchoDelegate() }
        #expect(second.port == port)
        await second.close()
    }
}

extension ServerFixture {
    /// Round trips over a connection whose delegate is a `CollectingDelegate`.
    struct Echo {
        let loop: UVEventLoop
        func roundTrip(_ bytes: [UInt8], on connection: TCPConnection, _ collector: CollectingDelegate) async
            -> [UInt8]
        {
            let start = loop.runSync { collector.received.count }
            let all: [UInt8] = await withCheckedContinuation { continuation in
                loop.execute {
                    collector.wait(for: start + bytes.count, continuation)
                    connection.writeAndFlush(bytes)
                }
            }
            return Array(all[start...])
        }
    }
}
