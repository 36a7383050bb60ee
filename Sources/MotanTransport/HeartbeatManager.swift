import Logging
import MotanLoop

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Probes unavailable endpoints of one loop with heartbeats, on one repeating timer that runs
/// only while there is something to do: an endpoint to revive, or (opt-in) an endpoint whose
/// idle connections need keepalives.
///
/// Improvements over the originals' fixed-period loops: probes of a long-dead endpoint back off
/// exponentially with jitter up to a cap, at most one probe per endpoint is in flight, a removed
/// endpoint is forgotten at once, and state changes (not failed probes) are what gets logged.
public final class HeartbeatManager: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Timer period and the delay before the first probe (Java: 500 ms).
        public var period: Duration
        /// Growth of the delay between failed probes of the same endpoint; 1 disables backoff.
        public var backoffMultiplier: Double
        public var maxBackoff: Duration
        /// Each delay is scaled by a random factor in 1 ± jitter, so that clients do not probe a
        /// recovering server in lockstep.
        public var jitter: Double

        public init(
            period: Duration = .milliseconds(500), backoffMultiplier: Double = 2,
            maxBackoff: Duration = .seconds(30), jitter: Double = 0.2
        ) {
            self.period = period
            self.backoffMultiplier = backoffMultiplier
            self.maxBackoff = maxBackoff
            self.jitter = jitter
        }
    }

    private final class Probe {
        let endpoint: ClientEndpoint
        var failures = 0
        var nextAt: UInt64
        var inFlight = false

        init(endpoint: ClientEndpoint, nextAt: UInt64) {
            self.endpoint = endpoint
            self.nextAt = nextAt
        }
    }

    public let loop: UVEventLoop
    public let configuration: Configuration
    private var probes: [ObjectIdentifier: Probe] = [:]
    private var idleWatched: [ObjectIdentifier: ClientEndpoint] = [:]
    private var timer: LoopTimer?
    private var random = SystemRandomNumberGenerator()

    init(loop: UVEventLoop, configuration: Configuration) {
        self.loop = loop
        self.configuration = configuration
    }

    /// The loop's manager, created with `configuration` on first use (later ones are ignored).
    public static func of(
        _ loop: UVEventLoop, configuration: Configuration = Configuration()
    ) -> HeartbeatManager {
        LoopServices.of(loop, configuration: configuration).heartbeats
    }

    /// Whether the probe timer exists right now. False once the loop has shut down. On the loop,
    /// or blocking a thread that is no loop's: async code uses `timerRunning()`.
    public var isTimerRunning: Bool { onLoop(orIfShutDown: false) { self.timer != nil } }

    /// Endpoints currently being probed; 0 once the loop has shut down. On the loop, or blocking
    /// a thread that is no loop's: async code uses `probedEndpoints()`.
    public var probedEndpointCount: Int { onLoop(orIfShutDown: 0) { self.probes.count } }

    /// `isTimerRunning`, from any thread or task without blocking.
    public func timerRunning() async -> Bool { await onLoop(orIfShutDown: false) { self.timer != nil } }

    /// `probedEndpointCount`, from any thread or task without blocking.
    public func probedEndpoints() async -> Int { await onLoop(orIfShutDown: 0) { self.probes.count } }

    /// A shut-down loop closed the timer and forgot every probe, so the fallback is the truth.
    private func onLoop<T>(orIfShutDown fallback: T, _ body: @escaping () -> T) -> T {
        if loop.inEventLoop { return body() }
        UVEventLoop.preconditionNotOnLoopThread("HeartbeatManager's blocking accessors off the manager's loop")
        return loop.tryRunSync(body) ?? fallback
    }

    private func onLoop<T: Sendable>(
        orIfShutDown fallback: T, _ body: @escaping @Sendable () -> T
    ) async -> T {
        (try? await loop.submit(body)) ?? fallback
    }

    /// The loop has finished: its timer is closed and no probe can run; forget every endpoint,
    /// so that none stays alive through the manager.
    func loopDidFinish() {
        probes = [:]
        idleWatched = [:]
        timer = nil
    }

    // MARK: membership (loop thread)

    func startProbing(_ endpoint: ClientEndpoint) {
        let key = ObjectIdentifier(endpoint)
        guard probes[key] == nil else { return }
        probes[key] = Probe(
            endpoint: endpoint, nextAt: loop.now + configuration.period.roundedUpMilliseconds)
        updateTimer()
    }

    func stopProbing(_ endpoint: ClientEndpoint) {
        probes[ObjectIdentifier(endpoint)] = nil
        updateTimer()
    }

    func watchIdle(_ endpoint: ClientEndpoint) {
        idleWatched[ObjectIdentifier(endpoint)] = endpoint
        updateTimer()
    }

    /// The endpoint is gone: no more probes or keepalives, starting now.
    func forget(_ endpoint: ClientEndpoint) {
        probes[ObjectIdentifier(endpoint)] = nil
        idleWatched[ObjectIdentifier(endpoint)] = nil
        updateTimer()
    }

    private func updateTimer() {
        loop.preconditionInEventLoop()
        let needed = !probes.isEmpty || !idleWatched.isEmpty
        if needed && timer == nil {
            timer = loop.scheduleRepeatingTimer(every: configuration.period) { [unowned self] in
                self.tick()
            }
        } else if !needed, let timer {
            timer.cancel()
            self.timer = nil
        }
    }

    // MARK: probing

    private func tick() {
        let now = loop.now
        for (key, probe) in probes where !probe.inFlight && probe.nextAt <= now {
            send(probe, key: key)
        }
        for endpoint in idleWatched.values { endpoint.checkIdle(now: now) }
    }

    private func send(_ probe: Probe, key: ObjectIdentifier) {
        probe.inFlight = true
        probe.endpoint.probe { [self] result in
            // Removed or revived while the probe was out: nothing left to schedule.
            guard probes[key] === probe else { return }
            probe.inFlight = false
            if case .failure(let error) = result {
                probe.failures += 1
                probe.nextAt = loop.now + delay(afterFailures: probe.failures)
                probe.endpoint.logger.trace(
                    "probe \(probe.failures) of \(probe.endpoint.address) failed: \(error)")
            }
        }
    }

    /// period × multiplier^(failures − 1), capped, times a jitter factor.
    func delay(afterFailures failures: Int) -> UInt64 {
        let period = Double(configuration.period.roundedUpMilliseconds)
        let cap = Double(configuration.maxBackoff.roundedUpMilliseconds)
        let exponent = Double(max(0, failures - 1))
        let base = min(cap, period * pow(max(1, configuration.backoffMultiplier), exponent))
        let spread = max(0, min(1, configuration.jitter))
        let factor = spread > 0 ? Double.random(in: (1 - spread)...(1 + spread), using: &random) : 1
        return UInt64(max(1, base * factor))
    }
}
