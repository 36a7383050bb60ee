import MotanLoop
import Synchronization
import Testing

@Suite("TCP echo over loopback")
struct EchoTests {
    @Test("echo round trip", arguments: [1, 64 * 1024, 8 * 1024 * 1024])
    func echoRoundTrip(size: Int) async throws {
        let fixture = try ServerFixture(loops: 2)
        defer { fixture.shutdown() }
        #expect(fixture.server.port > 0)
        let loop = fixture.group.next()
        let collector = CollectingDelegate()
        let connection = try await fixture.connect(on: loop) { collector }
        let message = pattern(size)
        let echoed = await fixture.send(message, on: connection, to: collector, awaiting: size)
        #expect(echoed.count == size)
        #expect(echoed == message)
        let reads = loop.runSync { collector.reads }
        if size > UVEventLoop.readBufferSize {
            // The message cannot fit one read; it must have been reassembled from many.
            #expect(reads >= size / UVEventLoop.readBufferSize)
        }
        loop.runSync { connection.close() }
    }

    @Test("listeners on every loop share one port and all accept")
    func reusePortAcrossLoops() async throws {
        let acceptedOn = LockedCounter(buckets: 2)
        let fixture = try ServerFixture(loops: 2) { connection in
            acceptedOn.increment(connection.loop.name.hasSuffix("-0") ? 0 : 1)
            return EchoDelegate()
        }
        defer { fixture.shutdown() }
        for _ in 0..<64 {
            let loop = fixture.group.next()
            let collector = CollectingDelegate()
            let connection = try await fixture.connect(on: loop) { collector }
            #expect(await fixture.send([42], on: connection, to: collector, awaiting: 1) == [42])
            loop.runSync { connection.close() }
        }
        let counts = acceptedOn.values
        #expect(counts.reduce(0, +) == 64)
        // The kernel hashes connections over the two listening sockets; both must take some.
        #expect(counts.allSatisfy { $0 > 0 }, "accepted per loop: \(counts)")
    }

    @Test("half-close: the peer still answers after our write side is shut down")
    func halfClose() async throws {
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
        let fixture = try ServerFixture { _ in CountThenReply() }
        defer { fixture.shutdown() }
        let loop = fixture.loop
        let collector = CollectingDelegate()
        let connection = try await fixture.connect { collector }
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

    @Test("echo over ::1")
    func ipv6Echo() async throws {
        let fixture = try ServerFixture(host: "::1")
        defer { fixture.shutdown() }
        let collector = CollectingDelegate()
        let connection = try await fixture.connect { collector }
        #expect(
            await fixture.send(Array("hello".utf8), on: connection, to: collector, awaiting: 5) == Array("hello".utf8))
        #expect(
            fixture.loop.runSync { connection.remoteAddress } == TCPAddress(host: "::1", port: fixture.server.port))
        fixture.loop.runSync { connection.close() }
    }

    @Test("close is idempotent: the delegate hears about it once, with the first reason")
    func closeTwice() async throws {
        let fixture = try ServerFixture()
        defer { fixture.shutdown() }
        let loop = fixture.loop
        let collector = CollectingDelegate()
        let connection = try await fixture.connect { collector }
        let reason: CloseReason = await withCheckedContinuation { continuation in
            loop.execute {
                collector.waitForClose(continuation)
                connection.close(.protocolViolation("first"))
                connection.close(.local)
                connection.close(.remoteClosed)
            }
        }
        #expect(reason == .protocolViolation("first"))
        // Give a second report, if there were one, time to arrive.
        try await Task.sleep(for: .milliseconds(20))
        #expect(loop.runSync { collector.closeReasons } == [.protocolViolation("first")])
        #expect(loop.runSync { connection.state } == .closed)
        #expect(loop.runSync { loop.liveHandleCount() } == 1)  // the listener
    }
}

/// A thread-safe counter per bucket, for counting from loop threads.
final class LockedCounter: Sendable {
    private let storage: Mutex<[Int]>
    init(buckets: Int) { storage = Mutex(Array(repeating: 0, count: buckets)) }
    func increment(_ bucket: Int) { storage.withLock { $0[bucket] += 1 } }
    var values: [Int] { storage.withLock { $0 } }
}
