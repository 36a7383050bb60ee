import Dispatch
import Histogram
import MotanLoop
import Synchronization

/// What one run of the echo load measured.
public struct EchoLoadResult: Sendable, CustomStringConvertible {
    public var roundTrips: Int
    public var elapsedNanoseconds: UInt64
    public var histogram: Histogram<UInt64>

    public var roundTripsPerSecond: Double {
        elapsedNanoseconds == 0 ? 0 : Double(roundTrips) * 1e9 / Double(elapsedNanoseconds)
    }
    public var p50: UInt64 { histogram.valueAtPercentile(50) }
    public var p99: UInt64 { histogram.valueAtPercentile(99) }
    public var p999: UInt64 { histogram.valueAtPercentile(99.9) }

    public var description: String {
        let us = { (ns: UInt64) in String(Double(ns / 100) / 10) + " µs" }
        return "\(roundTrips) round trips in \(elapsedNanoseconds / 1_000_000) ms: "
            + "\(Int(roundTripsPerSecond)) rt/s, p50 \(us(p50)), p99 \(us(p99)), p99.9 \(us(p999)), max \(us(histogram.max))"
    }
}

/// Drives one connection: keeps `depth` frames in flight, records each round trip's latency, and
/// stops after its quota or at the deadline. Loop thread only; allocation-free per round trip.
public final class EchoLoadClient: TCPConnectionDelegate, @unchecked Sendable {
    private let frame: [UInt8]
    private let depth: Int
    private var quota = 0
    private var deadline: UInt64 = 0
    private var sent = 0
    private var completed = 0
    private var receivedBytes = 0
    /// Send times of frames in flight; replies come back in order on one connection.
    private var sendTimes: [UInt64]
    private var head = 0
    public private(set) var histogram = Histogram<UInt64>(
        highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    private var done: ((Int) -> Void)?
    public private(set) var closeReason: CloseReason?

    public init(frameSize: Int, depth: Int) {
        precondition(frameSize >= 4 && depth >= 1)
        var frame = [UInt8](repeating: 0x5a, count: frameSize)
        let payload = UInt32(frameSize - 4).bigEndian
        withUnsafeBytes(of: payload) { for i in 0..<4 { frame[i] = $0[i] } }
        self.frame = frame
        self.depth = depth
        sendTimes = [UInt64](repeating: 0, count: depth)
    }

    /// Starts a batch of `roundTrips`; `completion` gets how many completed. Loop thread only.
    public func run(
        on connection: TCPConnection, roundTrips: Int, deadlineNanoseconds: UInt64,
        completion: @escaping (Int) -> Void
    ) {
        quota = roundTrips
        deadline = deadlineNanoseconds
        sent = 0
        completed = 0
        done = completion
        for _ in 0..<Swift.min(depth, quota) { send(on: connection) }
        connection.flush()
    }

    public func resetHistogram() { histogram.reset() }

    private func send(on connection: TCPConnection) {
        sendTimes[(head + sent - completed) % depth] = DispatchTime.now().uptimeNanoseconds
        sent += 1
        frame.withUnsafeBytes { connection.write($0) }
    }

    public func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        receivedBytes += bytes.count
        let now = DispatchTime.now().uptimeNanoseconds
        var sentAny = false
        while receivedBytes >= frame.count {
            receivedBytes -= frame.count
            _ = histogram.record(now - sendTimes[head])
            head = (head + 1) % depth
            completed += 1
            if sent < quota && now < deadline {
                send(on: connection)
                sentAny = true
            }
        }
        if sentAny { connection.flush() }
        if completed == sent && (sent == quota || now >= deadline) { finish() }
    }

    private func finish() {
        let done = self.done
        self.done = nil
        done?(completed)
    }

    public func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        closeReason = reason
        finish()
    }
}

/// A set of connected load clients that can run many bounded batches: connect once, measure often.
public final class EchoLoadSession: @unchecked Sendable {
    private let clients: [(EchoLoadClient, TCPConnection)]

    private init(clients: [(EchoLoadClient, TCPConnection)]) { self.clients = clients }

    /// `connections` connections spread over `group`, each keeping `depth` frames in flight.
    public static func connect(
        to address: TCPAddress, group: UVEventLoopGroup, connections: Int = 1, depth: Int = 1,
        frameSize: Int = 64
    ) async throws -> EchoLoadSession {
        var clients: [(EchoLoadClient, TCPConnection)] = []
        for _ in 0..<connections {
            let client = EchoLoadClient(frameSize: frameSize, depth: depth)
            let connection = try await TCPConnection.connect(
                to: address, on: group.next(), timeout: .seconds(5)
            ) {
                client
            }
            clients.append((client, connection))
        }
        return EchoLoadSession(clients: clients)
    }

    /// Starts a batch on every connection; returns how many were started (a connection whose
    /// loop has shut down refuses, and its `completion` never runs).
    private func start(
        roundTrips: Int, deadline: UInt64, completion: @escaping @Sendable (Int) -> Void
    ) -> Int {
        let perConnection = Swift.max(1, roundTrips / clients.count)
        var started = 0
        for (client, connection) in clients {
            let accepted = connection.loop.execute {
                client.run(
                    on: connection, roundTrips: perConnection, deadlineNanoseconds: deadline,
                    completion: completion)
            }
            if accepted { started += 1 }
        }
        return started
    }

    /// Runs about `roundTrips` round trips split over the connections; returns how many completed.
    /// Throws `loopShutDown` (after the batches that did start) if a connection's loop has shut down.
    public func run(roundTrips: Int, timeLimit: Duration) async throws(LoopError) -> Int {
        let deadline =
            DispatchTime.now().uptimeNanoseconds + timeLimit.roundedUpMilliseconds * 1_000_000
        let results = AsyncStream<Int>.makeStream()
        let started = start(roundTrips: roundTrips, deadline: deadline) { results.continuation.yield($0) }
        var total = 0
        var finished = 0
        if started > 0 {
            for await completed in results.stream {
                total += completed
                finished += 1
                if finished == started { break }
            }
        }
        guard started == clients.count else { throw .loopShutDown }
        return total
    }

    /// The same, blocking the calling thread: for benchmark loops that must not hop executors.
    public func runBlocking(roundTrips: Int, timeLimit: Duration) throws(LoopError) -> Int {
        let deadline =
            DispatchTime.now().uptimeNanoseconds + timeLimit.roundedUpMilliseconds * 1_000_000
        let done = DispatchSemaphore(value: 0)
        let total = Counter()
        let started = start(roundTrips: roundTrips, deadline: deadline) {
            total.add($0)
            done.signal()
        }
        for _ in 0..<started { done.wait() }
        guard started == clients.count else { throw .loopShutDown }
        return total.value
    }

    /// All connections' latencies merged. Blocking; never call on a loop thread.
    public func histogram() -> Histogram<UInt64> {
        var merged = Histogram<UInt64>(
            highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for (client, connection) in clients {
            // A finished loop no longer touches its clients: read them here.
            let histogram = connection.loop.tryRunSync { client.histogram } ?? client.histogram
            merged.add(histogram)
        }
        return merged
    }

    public func resetHistograms() {
        for (client, connection) in clients {
            if connection.loop.tryRunSync({ client.resetHistogram() }) == nil { client.resetHistogram() }
        }
    }

    /// Closes every connection; those of a loop that has shut down are closed already.
    public func close() {
        for (_, connection) in clients { _ = connection.loop.tryRunSync { connection.close() } }
    }
}

/// Counts across threads without a lock on any loop's hot path (only at batch ends).
private final class Counter: @unchecked Sendable {
    private let lock = Mutex(())
    private var total = 0
    func add(_ n: Int) { lock.withLock { _ in total += n } }
    var value: Int { lock.withLock { _ in total } }
}

/// Runs a bounded closed-loop echo load against `address`: `connections` connections spread over
/// `group`, each with `depth` frames in flight, `roundTrips` in total, stopping early at `timeLimit`.
public enum EchoLoad {
    public static func run(
        address: TCPAddress, group: UVEventLoopGroup, connections: Int = 1, depth: Int = 1,
        frameSize: Int = 64, roundTrips: Int, timeLimit: Duration = .seconds(30)
    ) async throws -> EchoLoadResult {
        let session = try await EchoLoadSession.connect(
            to: address, group: group, connections: connections, depth: depth, frameSize: frameSize)
        defer { session.close() }
        let started = DispatchTime.now().uptimeNanoseconds
        let completed = try await session.run(roundTrips: roundTrips, timeLimit: timeLimit)
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        return EchoLoadResult(
            roundTrips: completed, elapsedNanoseconds: elapsed, histogram: session.histogram())
    }
}

/// A raw echo server and a connected, warmed-up load session, each on a loop group of its own:
/// the fixture for benchmarks that measure many batches against the event-loop floor.
public final class LoopbackEchoRig: @unchecked Sendable {
    public let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-server")
    public let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-client")
    public let server: TCPServer
    public let session: EchoLoadSession

    public init(connections: Int, depth: Int, frameSize: Int = 64, warmupRoundTrips: Int = 20_000) async throws {
        server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: serverGroup) { _ in
            LengthPrefixedEchoHandler()
        }
        session = try await EchoLoadSession.connect(
            to: server.address, group: clientGroup, connections: connections, depth: depth, frameSize: frameSize)
        // Fill the pools and warm the caches before anything is measured.
        _ = try session.runBlocking(roundTrips: warmupRoundTrips, timeLimit: .seconds(10))
        session.resetHistograms()
    }

    public func shutdown() {
        session.close()
        server.close()
        clientGroup.syncShutdown()
        serverGroup.syncShutdown()
    }
}
