import MotanLoop
import Synchronization
import Testing

@Suite("TCP echo over loopback")
struct EchoTests {
    @Test("echo round trip", arguments: [1, 64 * 1024, 8 * 1024 * 1024])
    func echoRoundTrip(size: Int) async throws {
        let group = EventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        defer { server.close() }
        #expect(server.port > 0)

        let loop = group.next()
        let collector = CollectingDelegate()
        let connection = try await TCPConnection.connect(
            to: SocketAddress(host: "127.0.0.1", port: server.port), on: loop, timeout: .seconds(5)
        ) { collector }
        let message = pattern(size)
        let echoed: [UInt8] = await withCheckedContinuation { continuation in
            loop.execute {
                collector.wait(for: size, continuation)
                connection.writeAndFlush(message)
            }
        }
        #expect(echoed.count == size)
        #expect(echoed == message)
        let reads = loop.runSync { collector.reads }
        if size > EventLoop.readBufferSize {
            // The message cannot fit one read; it must have been reassembled from many.
            #expect(reads >= size / EventLoop.readBufferSize)
        }
        loop.runSync { connection.close() }
    }

    @Test("listeners on every loop share one port and all accept")
    func reusePortAcrossLoops() async throws {
        let group = EventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let acceptedOn = LockedCounter(buckets: 2)
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { connection in
            acceptedOn.increment(group.loops.firstIndex { $0 === connection.loop }!)
            return EchoDelegate()
        }
        defer { server.close() }
        for _ in 0..<64 {
            let loop = group.next()
            let collector = CollectingDelegate()
            let connection = try await TCPConnection.connect(
                to: SocketAddress(host: "127.0.0.1", port: server.port), on: loop, timeout: .seconds(5)
            ) { collector }
            let reply: [UInt8] = await withCheckedContinuation { continuation in
                loop.execute {
                    collector.wait(for: 1, continuation)
                    connection.writeAndFlush([42])
                }
            }
            #expect(reply == [42])
            loop.runSync { connection.close() }
        }
        let counts = acceptedOn.values
        #expect(counts.reduce(0, +) == 64)
        // The kernel hashes connections over the two listening sockets; both must take some.
        #expect(counts.allSatisfy { $0 > 0 }, "accepted per loop: \(counts)")
    }

    @Test("half-close: the peer still answers after our write side is shut down")
    func halfClose() async throws {
        let group = EventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        // Server: collect until EOF, then answer with the byte count and close.
        final class CountThenReply: TCPConnectionDelegate, @unchecked Sendable {
            var count = 0
            func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
                count += bytes.count
            }
            func connectionDidReadEOF(_ connection: TCPConnection) {
                connection.writeAndFlush(Array("\(count)".utf8))
                connection.shutdownWrite()
            }
            func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
        }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in CountThenReply() }
        defer { server.close() }
        let loop = group.loops[0]
        let collector = CollectingDelegate()
        let connection = try await TCPConnection.connect(
            to: SocketAddress(host: "127.0.0.1", port: server.port), on: loop, timeout: .seconds(5)
        ) { collector }
        let reason: CloseReason = await withCheckedContinuation { continuation in
            loop.execute {
                collector.waitForClose(continuation)
                connection.write(pattern(100_000))
                connection.shutdownWrite()
            }
        }
        let (received, eof) = loop.runSync { (collector.received, collector.eofSeen) }
        #expect(String(decoding: received, as: UTF8.self) == "100000")
        #expect(eof)
        #expect(reason == .remoteClosed)
    }
}

/// A thread-safe counter per bucket, for counting from loop threads.
final class LockedCounter: Sendable {
    private let storage: Mutex<[Int]>
    init(buckets: Int) { storage = Mutex(Array(repeating: 0, count: buckets)) }
    func increment(_ bucket: Int) { storage.withLock { $0[bucket] += 1 } }
    var values: [Int] { storage.withLock { $0 } }
}

@Suite("IPv6 and repeated close")
struct IPv6AndCloseTests {
    @Test("echo over ::1")
    func ipv6Echo() async throws {
        let group = EventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let server = try TCPServer.bind(host: "::1", port: 0, on: group) { _ in EchoDelegate() }
        defer { server.close() }
        let loop = group.loops[0]
        let collector = CollectingDelegate()
        let connection = try await TCPConnection.connect(
            to: SocketAddress(host: "::1", port: server.port), on: loop, timeout: .seconds(5)
        ) { collector }
        let echoed: [UInt8] = await withCheckedContinuation { continuation in
            loop.execute {
                collector.wait(for: 5, continuation)
                connection.writeAndFlush(Array("hello".utf8))
            }
        }
        #expect(echoed == Array("hello".utf8))
        #expect(loop.runSync { connection.remoteAddress } == SocketAddress(host: "::1", port: server.port))
        loop.runSync { connection.close() }
    }

    @Test("close is idempotent: the delegate hears about it once, with the first reason")
    func closeTwice() async throws {
        let group = EventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        defer { server.close() }
        let loop = group.loops[0]
        let collector = CollectingDelegate()
        let connection = try await TCPConnection.connect(
            to: SocketAddress(host: "127.0.0.1", port: server.port), on: loop, timeout: .seconds(5)
        ) { collector }
        let reason: CloseReason = await withCheckedContinuation { continuation in
            loop.execute {
                collector.waitForClose(continuation)
                connection.close(.protocolViolation("first"))
                connection.close(.local)
                connection.close(.remoteClosed)
            }
        }
        #expect(reason == .protocolViolation("first"))
        // One more loop turn so a second report, if any, would have arrived.
        try await Task.sleep(for: .milliseconds(20))
        #expect(loop.runSync { collector.closeReasons } == [.protocolViolation("first")])
        #expect(loop.runSync { connection.state } == .closed)
        #expect(loop.runSync { loop.liveHandleCount() } == 1)  // the listener
    }
}
