import Histogram
import MotanLoop
import Synchronization

/// Outcome counts of a run (or of one loop's share of it). Every request issued inside the
/// measured window ends in exactly one of succeeded, timeout, unavailable, serverError or
/// connection, so `requests` equals their sum once the run has drained.
public struct BenchTally: Sendable, Codable, Equatable {
    /// Requests issued in the measured window, fast-failed ones included.
    public var requests = 0
    public var succeeded = 0
    /// No answer within `--timeout`.
    public var timeout = 0
    /// Not sent: the target was unavailable (failure threshold reached, not yet revived).
    public var unavailable = 0
    /// Answered with an exception response.
    public var serverError = 0
    /// Lost with its connection, or not sent for want of one.
    public var connection = 0
    /// Constant rate: requests the schedule called for inside the measured window.
    public var intended = 0
    /// Answers that came after their request had timed out.
    public var lateResponses = 0
    public var connectFailures = 0

    public init() {}

    public var errors: Int { timeout + unavailable + serverError + connection }

    mutating func add(_ other: BenchTally) {
        requests += other.requests
        succeeded += other.succeeded
        timeout += other.timeout
        unavailable += other.unavailable
        serverError += other.serverError
        connection += other.connection
        intended += other.intended
        lateResponses += other.lateResponses
        connectFailures += other.connectFailures
    }
}

/// A worker's hot state.
struct BenchWorkerStats {
    var tally = BenchTally()
    var histogram: Histogram<UInt64>
    /// Requests this loop may still issue: unbounded in timed runs, a batch's size in `startBatch`.
    var remaining = Int.max
    /// Answers of any kind, warm-up included: the live rate.
    var answered = 0
}

/// The load of one client loop: its connections, their timers, one latency histogram and one
/// tally, all touched only on the loop (merged by the runner at the end). Progress numbers are
/// published to atomics from the 10 ms housekeeping tick, never per request.
final class BenchWorker: @unchecked Sendable {
    let loop: UVEventLoop
    let configuration: BenchConfiguration
    let healths: [BenchTargetHealth]
    let request: BenchRequestTemplate
    let heartbeat = BenchRequestTemplate.heartbeat()
    let timeoutNanoseconds: UInt64
    let reconnectDelay: UInt64
    private let probeInterval: UInt64
    private let isRateMode: Bool

    var connections: [BenchConnection] = []
    /// Hot counters and the histogram, in pointer storage so recording skips exclusivity checks.
    let stats: UnsafeMutablePointer<BenchWorkerStats>
    /// Where a refill's requests are laid side by side before one write.
    let staging: UnsafeMutableRawBufferPointer
    private let highestLatency: UInt64

    var tally: BenchTally { stats.pointee.tally }
    var histogram: Histogram<UInt64> { stats.pointee.histogram }

    private(set) var startAt: UInt64 = 0
    private(set) var measureFrom: UInt64 = .max
    private(set) var stopAt: UInt64 = .max
    private(set) var isClosing = false
    private var housekeeping: LoopTimer?
    private var ticker: LoopTimer?
    private var nextProbe: [UInt64]
    private var probeSequence: UInt64 = 0
    private var finished: (() -> Void)?

    // Read by the progress display on another thread.
    let publishedRequests = Atomic<Int>(0)
    let publishedSucceeded = Atomic<Int>(0)
    let publishedErrors = Atomic<Int>(0)
    let publishedAnswered = Atomic<Int>(0)

    init(loop: UVEventLoop, configuration: BenchConfiguration, healths: [BenchTargetHealth]) {
        self.loop = loop
        self.configuration = configuration
        self.healths = healths
        request = .request(
            service: configuration.service, method: configuration.method, group: configuration.group,
            payloadBytes: configuration.payloadBytes, gzip: configuration.gzip)
        timeoutNanoseconds = UInt64(configuration.timeoutMilliseconds) * 1_000_000
        reconnectDelay = UInt64(configuration.reconnectDelayMilliseconds) * 1_000_000
        probeInterval = UInt64(configuration.probeIntervalMilliseconds) * 1_000_000
        if case .constantRate = configuration.shape { isRateMode = true } else { isRateMode = false }
        nextProbe = [UInt64](repeating: 0, count: healths.count)
        // Coordinated-omission correction can report waits as long as the whole run.
        let runSeconds = configuration.warmupSeconds + configuration.durationSeconds
        highestLatency = Swift.max(
            60_000_000_000, UInt64((runSeconds + Double(configuration.timeoutMilliseconds) / 1000) * 2e9))
        stats = .allocate(capacity: 1)
        stats.initialize(
            to: BenchWorkerStats(
                histogram: Histogram<UInt64>(
                    highestTrackableValue: highestLatency, numberOfSignificantValueDigits: .three)))
        staging = .allocate(byteCount: Swift.max(64 << 10, request.bytes.count), alignment: 8)
    }

    deinit {
        stats.deinitialize(count: 1)
        stats.deallocate()
        staging.deallocate()
    }

    func addConnection(target: Int) -> BenchConnection {
        let connection = BenchConnection(
            worker: self, health: healths[target], targetIndex: target,
            capacity: configuration.slotsPerConnection)
        connections.append(connection)
        return connection
    }

    @inline(__always)
    func isIssuing(_ now: UInt64) -> Bool {
        stats.pointee.remaining > 0 && now >= startAt && now < stopAt && !isClosing
    }

    // MARK: run

    /// Starts the load; `finished` runs on the loop once the window has closed and nothing is in flight.
    func start(startAt: UInt64, measureFrom: UInt64, stopAt: UInt64, finished: @escaping () -> Void) {
        self.startAt = startAt
        self.measureFrom = measureFrom
        self.stopAt = stopAt
        self.finished = finished
        housekeeping = loop.scheduleRepeatingTimer(every: .milliseconds(10)) { [unowned self] in tick() }
        if case .constantRate(let rate) = configuration.shape {
            // Every connection gets an equal share of the rate, staggered so they do not fire together.
            let total = Double(configuration.connections * healths.count)
            let interval = UInt64(1e9 * total / rate)
            for connection in connections {
                connection.interval = Swift.max(1, interval)
                let position = UInt64(connection.globalIndex)
                connection.nextIntended = startAt + interval * position / UInt64(total)
            }
            ticker = loop.scheduleRepeatingTimer(every: .milliseconds(1)) { [unowned self] in
                let now = benchNow()
                for connection in connections { connection.pump(now: now) }
            }
        } else {
            let now = benchNow()
            for connection in connections { connection.refill(now: now) }
        }
    }

    func connectionOpened(_ connection: BenchConnection) {
        guard finished != nil else { return }
        let now = benchNow()
        if isRateMode { connection.pump(now: now) } else { connection.refill(now: now) }
    }

    func afterRead(_ connection: BenchConnection, now: UInt64) {
        if isRateMode { connection.pump(now: now) } else { connection.refill(now: now) }
        if stats.pointee.remaining == 0 && connection.isQuiet && finished != nil && connections.allSatisfy(\.isQuiet) {
            finish()
        }
    }

    /// Closed loop without timers: issues exactly `requests` over this loop's connections and calls
    /// `finished` from the read that completes the last one. For repeated measurement (benchmarks).
    func startBatch(requests: Int, finished: @escaping () -> Void) {
        startAt = 0
        measureFrom = 0
        stopAt = .max
        stats.pointee.remaining = requests
        self.finished = finished
        let now = benchNow()
        for connection in connections { connection.refill(now: now) }
        if requests == 0 { finish() }
    }

    @inline(__always)
    func record(_ outcome: BenchConnection.Outcome, latency: UInt64) {
        let stats = self.stats
        switch outcome {
        case .success:
            stats.pointee.tally.succeeded += 1
            _ = stats.pointee.histogram.record(Swift.min(latency, highestLatency))
        case .serverError: stats.pointee.tally.serverError += 1
        case .timeout: stats.pointee.tally.timeout += 1
        case .connection: stats.pointee.tally.connection += 1
        case .unavailable: stats.pointee.tally.unavailable += 1
        }
    }

    /// Requests that fail without being sent; `now` is their intended time.
    func countFastFailures(_ outcome: BenchConnection.Outcome, count: Int, now: UInt64) {
        guard now >= measureFrom, now < stopAt else { return }
        stats.pointee.tally.requests += count
        for _ in 0..<count { record(outcome, latency: 0) }
    }

    private func tick() {
        let now = benchNow()
        // Past the drain limit whatever is still unanswered counts as timed out, so a stalled
        // server cannot keep the run open for a long --timeout.
        let timeout = now >= stopAt &+ Self.drainLimit ? 0 : timeoutNanoseconds
        for connection in connections {
            connection.expire(now: now, timeout: timeout)
        }
        if now < stopAt {
            for connection in connections where connection.state == .down && now >= connection.reconnectAt {
                connection.connect(timeout: .milliseconds(Int64(Swift.min(configuration.timeoutMilliseconds, 1000))))
            }
            probeUnavailableTargets(now: now)
            if !isRateMode {
                for connection in connections { connection.refill(now: now) }
            }
        }
        publish()
        if now >= stopAt && connections.allSatisfy(\.isQuiet) { finish() }
    }

    static let drainLimit: UInt64 = 2_000_000_000
    /// Constant-rate pacing period (libuv timers have millisecond resolution).
    static let tickNanoseconds: UInt64 = 1_000_000

    private func probeUnavailableTargets(now: UInt64) {
        for (index, health) in healths.enumerated() where !health.isAvailable && now >= nextProbe[index] {
            guard let connection = connections.first(where: { $0.targetIndex == index && $0.state == .open })
            else { continue }
            probeSequence += 1
            connection.probe(sequence: probeSequence)
            nextProbe[index] = now + probeInterval
        }
    }

    private func publish() {
        let tally = self.tally
        publishedRequests.store(tally.requests, ordering: .relaxed)
        publishedSucceeded.store(tally.succeeded, ordering: .relaxed)
        publishedErrors.store(tally.errors, ordering: .relaxed)
        publishedAnswered.store(stats.pointee.answered, ordering: .relaxed)
    }

    private func finish() {
        housekeeping?.cancel()
        housekeeping = nil
        ticker?.cancel()
        ticker = nil
        let done = finished
        finished = nil
        done?()
    }

    /// Closes every connection without counting what that breaks.
    func closeAll() {
        isClosing = true
        finish()
        for connection in connections { connection.close() }
    }
}
