import MotanLoop
import Synchronization
import Testing

@Suite("Writes, backpressure and close")
struct WriteTests {
    /// Stops reading at the first bytes, so the client's writes pile up in the kernel and then in its queue.
    final class Sink: TCPConnectionDelegate, @unchecked Sendable {
        func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
            connection.stopReading()
        }
        func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
    }

    final class WritabilityRecorder: TCPConnectionDelegate, @unchecked Sendable {
        var changes: [Bool] = []
        func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {}
        func connectionWritabilityChanged(_ connection: TCPConnection, isWritable: Bool) {
            changes.append(isWritable)
        }
        func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
    }

    @Test("close with writes pending: every completion runs exactly once, with an error")
    func closeWithPendingWrites() async throws {
        let fixture = try ServerFixture { _ in Sink() }
        defer { fixture.shutdown() }
        let loop = fixture.loop
        let recorder = WritabilityRecorder()
        let connection = try await fixture.connect { recorder }

        let writes = 400
        let chunk = pattern(64 * 1024)
        final class Outcomes: @unchecked Sendable {
            var calls = [Int](repeating: 0, count: 400)
            var failures = 0
            var successes = 0
        }
        let outcomes = Outcomes()
        loop.runSync {
            for i in 0..<writes {
                connection.write(chunk) { result in
                    outcomes.calls[i] += 1
                    switch result {
                    case .success: outcomes.successes += 1
                    case .failure(let error):
                        #expect(error == .connectionClosed(.local))
                        outcomes.failures += 1
                    }
                }
                // Flush every other write so some are in flight and some still queued at close.
                if i % 2 == 0 { connection.flush() }
            }
        }
        // Let the kernel take what it will; the server never reads, so 25 MiB cannot all go out.
        try await Task.sleep(for: .milliseconds(100))
        let pendingBeforeClose = loop.runSync { connection.pendingWriteBytes }
        #expect(pendingBeforeClose > 0)
        loop.runSync { connection.close() }
        // Completions of in-flight writes arrive from libuv's close processing: poll the loop (bounded).
        for _ in 0..<200 {
            if loop.runSync({ outcomes.successes + outcomes.failures }) == writes { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let (calls, failures, successes, pending) = loop.runSync {
            (outcomes.calls, outcomes.failures, outcomes.successes, connection.pendingWriteBytes)
        }
        #expect(calls.allSatisfy { $0 == 1 }, "every completion exactly once")
        #expect(failures > 0)
        #expect(successes + failures == writes)
        #expect(pending == 0)
        // Writes after close fail at once, also exactly once.
        let late = Mutex(0)
        loop.runSync { connection.write([1]) { _ in late.withLock { $0 += 1 } } }
        #expect(late.withLock { $0 } == 1)
        // Writability went false at the high watermark while the queue was full.
        #expect(loop.runSync { recorder.changes.first } == false)
    }

    @Test("writability: false above the high watermark, true again below the low one")
    func watermarks() async throws {
        let fixture = try ServerFixture()
        defer { fixture.shutdown() }
        let loop = fixture.loop
        // Echo back to a client that counts what it gets, so everything drains eventually.
        final class Recorder: TCPConnectionDelegate, @unchecked Sendable {
            var changes: [Bool] = []
            var received = 0
            var done: CheckedContinuation<Void, Never>?
            let total: Int
            init(total: Int) { self.total = total }
            func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
                received += bytes.count
                if received == total {
                    done?.resume()
                    done = nil
                }
            }
            func connectionWritabilityChanged(_ connection: TCPConnection, isWritable: Bool) {
                changes.append(isWritable)
            }
            func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
        }
        let total = 4 * 1024 * 1024
        let recorder = Recorder(total: total)
        let connection = try await fixture.connect { recorder }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                recorder.done = continuation
                connection.highWatermark = 512 * 1024
                connection.lowWatermark = 128 * 1024
                connection.write(pattern(total))
                #expect(!connection.isWritable)
                connection.flush()
            }
        }
        let changes = loop.runSync { recorder.changes }
        #expect(changes == [false, true])
        loop.runSync { connection.close() }
    }

    @Test("many small writes go out in one uv_write as one coalesced chunk")
    func batching() async throws {
        let fixture = try ServerFixture()
        defer { fixture.shutdown() }
        let loop = fixture.loop
        let collector = CollectingDelegate()
        let connection = try await fixture.connect { collector }
        let frames = (0..<100).map { pattern(64, seed: UInt8($0)) }
        nonisolated(unsafe) let big = LoopBuffer(capacity: 200_000)
        big.write(pattern(200_000, seed: 99))
        let completions = Mutex(0)
        let echoed: [UInt8] = await withCheckedContinuation { continuation in
            loop.execute {
                collector.wait(for: 100 * 64 + 200_000, continuation)
                for frame in frames { connection.write(frame) { _ in completions.withLock { $0 += 1 } } }
                // A caller-owned buffer is sent without copying, as its own uv_buf_t.
                connection.write(buffer: big) { _ in completions.withLock { $0 += 1 } }
                connection.flush()
            }
        }
        #expect(echoed == frames.flatMap { $0 } + pattern(200_000, seed: 99))
        #expect(completions.withLock { $0 } == 101)
        loop.runSync { connection.close() }
    }
}

@Suite("Writing to a peer that is gone")
struct BrokenPipeTests {
    @Test("writes to a reset connection fail with a typed error; the process survives")
    func writeAfterPeerReset() async throws {
        // The peer accepts and closes at once; our writes then hit a reset socket (EPIPE/ECONNRESET),
        // which must surface as a write error rather than a SIGPIPE that kills the process.
        let fixture = try ServerFixture { connection in
            connection.close()
            return nil
        }
        defer { fixture.shutdown() }
        /// Ignores the peer's FIN so that the connection stays open for writing, as a half-closed one may.
        final class KeepWriting: TCPConnectionDelegate, @unchecked Sendable {
            func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {}
            func connectionDidReadEOF(_ connection: TCPConnection) {}
            func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
        }
        let connection = try await fixture.connect { KeepWriting() }
        let loop = fixture.loop
        let outcomes = Locked<[Result<Void, LoopError>]>([])
        // Keep writing until a write fails (bounded: at most 200 rounds of 10 ms).
        for _ in 0..<200 {
            let state = loop.runSync { connection.state }
            if state != .open || outcomes.withLock({ $0.contains { if case .failure = $0 { true } else { false } } }) {
                break
            }
            loop.runSync {
                connection.write(pattern(64 * 1024)) { result in outcomes.withLock { $0.append(result) } }
                connection.flush()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let failures = outcomes.withLock { $0.filter { if case .failure = $0 { true } else { false } } }
        #expect(!failures.isEmpty)
        #expect(loop.runSync { connection.state } != .open)
    }
}
