import MotanLoop
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Connecting")
struct ConnectTests {
    @Test("connecting to a closed port fails with a typed error before the timeout")
    func refused() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let port = closedPort()
        let collector = CollectingDelegate()
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await TCPConnection.connect(
                to: TCPAddress(host: "127.0.0.1", port: port), on: group.loops[0], timeout: .seconds(5)
            ) { collector }
            Issue.record("connect to a closed port succeeded")
        } catch {
            #expect(error == .connectFailed(address: "127.0.0.1:\(port)", .connectionRefused))
        }
        #expect(clock.now - started < .seconds(5))
        #expect(group.loops[0].runSync { group.loops[0].liveHandleCount() } == 0)
        // A refused connect never opened, so the delegate hears nothing.
        #expect(collector.closeReasons.isEmpty)
    }

    @Test("a connect the peer never completes ends in connectTimeout")
    func timeout() async throws {
        // A listener with a full accept queue drops further SYNs on Linux, so the handshake never
        // finishes: a loopback stand-in for an unreachable host.
        let listener = RawSocket(listenBacklog: 0)
        defer { listener.close() }
        let port = listener.port
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let address = TCPAddress(host: "127.0.0.1", port: port)
        var timedOut = 0
        var filled: [TCPConnection] = []
        // The first one or two fill the queue and connect; a later one must time out.
        for _ in 0..<4 {
            do {
                filled.append(
                    try await TCPConnection.connect(
                        to: address, on: group.loops[0], timeout: .milliseconds(300)
                    ) {
                        CollectingDelegate()
                    })
            } catch {
                #expect(error == .connectTimeout(address: address.description, milliseconds: 300))
                timedOut += 1
            }
        }
        #expect(timedOut >= 1)
        let loop = group.loops[0]
        loop.runSync { for c in filled { c.close() } }
    }

    @Test("invalid addresses are rejected with a typed error")
    func invalidAddress() async throws {
        #expect(throws: LoopError.invalidAddress("nonsense")) { try TCPAddress(parsing: "nonsense") }
        #expect(throws: LoopError.invalidAddress("1.2.3.4:99999")) {
            try TCPAddress(parsing: "1.2.3.4:99999")
        }
        #expect(try TCPAddress(parsing: "[::1]:8002") == TCPAddress(host: "::1", port: 8002))
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        do {
            _ = try await TCPConnection.connect(
                to: TCPAddress(host: "not-an-ip", port: 1), on: group.loops[0], timeout: .seconds(1)
            ) { CollectingDelegate() }
            Issue.record("connect to a non-literal host succeeded")
        } catch {
            #expect(error == .invalidAddress("not-an-ip:1"))
        }
    }

    @Test("binding a port already in use by another process fails with a typed error")
    func bindInUse() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        // A plain socket without SO_REUSEPORT holds the port exclusively.
        let holder = RawSocket(listenBacklog: 1)
        defer { holder.close() }
        let port = holder.port
        #expect(throws: LoopError.self) {
            try TCPServer.bind(host: "127.0.0.1", port: port, on: group) { _ in EchoDelegate() }
        }
        #expect(group.loops[0].runSync { group.loops[0].liveHandleCount() } == 0)
    }
}
