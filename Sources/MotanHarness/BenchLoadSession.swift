import Dispatch
import Histogram
import MotanLoop
import Synchronization

/// The bench's client path as a reusable fixture: connected once, then driven in fixed-size
/// closed-loop batches. Benchmarks use it to measure the harness itself (allocations and time
/// per request), so that `motan bench` is known not to be the bottleneck.
public final class BenchLoadSession: @unchecked Sendable {
    private let group: UVEventLoopGroup
    private let workers: [BenchWorker]

    private init(group: UVEventLoopGroup, workers: [BenchWorker]) {
        self.group = group
        self.workers = workers
    }

    /// `connections` connections to `address`, each keeping `depth` requests in flight, on
    /// `loops` loops of a group of the session's own.
    public static func connect(
        to address: TCPAddress, connections: Int, depth: Int, loops: Int = 1, payloadBytes: Int = 64,
        service: String = BenchConfiguration.defaultService, method: String = BenchConfiguration.defaultMethod
    ) async throws(BenchError) -> BenchLoadSession {
        let configuration = BenchConfiguration(
            targets: [address], connections: connections, shape: .closedLoop(depth: depth), payloadBytes: payloadBytes,
            service: service, method: method, loops: loops)
        let health = BenchTargetHealth(address: address, threshold: 0, origin: benchNow())
        let group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "bench-session")
        let workers = group.loops.map { BenchWorker(loop: $0, configuration: configuration, healths: [health]) }
        for index in 0..<connections {
            workers[index % workers.count].addConnection(target: 0).globalIndex = index
        }
        let session = BenchLoadSession(group: group, workers: workers)
        for worker in workers {
            let failed: [(Int, String)] = await withCheckedContinuation { continuation in
                if !worker.loop.execute({
                    worker.connectAll(timeout: .seconds(2)) { continuation.resume(returning: $0) }
                }) {
                    continuation.resume(returning: [(0, "loop shut down")])
                }
            }
            if let (_, reason) = failed.first {
                session.close()
                throw .unreachable(target: address.description, reason: reason)
            }
        }
        return session
    }

    /// Issues `requests` requests split over the loops and blocks until all have answered;
    /// returns how many succeeded. Never call on a loop.
    public func runBlocking(requests: Int) -> Int {
        let done = DispatchSemaphore(value: 0)
        let before = workers.map { worker in worker.loop.tryRunSync { worker.tally.succeeded } ?? 0 }
        let share = requests / workers.count
        for (index, worker) in workers.enumerated() {
            let count = share + (index < requests % workers.count ? 1 : 0)
            worker.loop.execute { worker.startBatch(requests: count) { done.signal() } }
        }
        for _ in workers { done.wait() }
        var succeeded = 0
        for (index, worker) in workers.enumerated() {
            succeeded += (worker.loop.tryRunSync { worker.tally.succeeded } ?? 0) - before[index]
        }
        return succeeded
    }

    /// Latencies of every request so far, merged over the loops.
    public func histogram() -> Histogram<UInt64> {
        var merged: Histogram<UInt64>?
        for worker in workers {
            guard let part = worker.loop.tryRunSync({ worker.histogram }) else { continue }
            if merged == nil { merged = part } else { merged!.add(part) }
        }
        return merged
            ?? Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    public func close() {
        for worker in workers { _ = worker.loop.tryRunSync { worker.closeAll() } }
        group.syncShutdown()
    }
}
