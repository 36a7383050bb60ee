import MotanLoop
import Synchronization

/// Something that happened to a target or the embedded server during a run.
public struct BenchEvent: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case unavailable, available, serverKilled, serverRestarted, serverPaused, serverResumed
    }

    /// Seconds since the load started.
    public var atSeconds: Double
    public var target: String
    public var kind: Kind
    public var detail: String
    /// For `unavailable`: when the run of failures that tripped it began (seconds since the load started).
    public var firstFailureAtSeconds: Double?
}

/// One target's availability, shared by every loop that has connections to it, counted as the
/// transport counts it: weighted consecutive failures (+1 failed call or timeout, +2 connect
/// failure, +3 no connection) reach the threshold → unavailable; an answered heartbeat (or any
/// answer) → available again. Successes only read shared state unless a failure came first, so
/// healthy traffic never writes a shared cache line.
final class BenchTargetHealth: Sendable {
    enum Failure {
        case callFailed, timeout, connectFailed, noConnection

        var weight: Int {
            switch self {
            case .callFailed, .timeout: return 1
            case .connectFailed: return 2
            case .noConnection: return 3
            }
        }
    }

    let address: TCPAddress
    let threshold: Int
    let origin: UInt64
    private let errorCount = Atomic<Int>(0)
    private let available = Atomic<Bool>(true)
    /// When the current run of failures began (0: none since the last success).
    private let firstFailureAt = Atomic<UInt64>(0)
    private let log = Mutex<[BenchEvent]>([])
    /// Flapping targets must not grow the log without bound.
    private static let maxEvents = 10_000

    init(address: TCPAddress, threshold: Int, origin: UInt64) {
        self.address = address
        self.threshold = threshold
        self.origin = origin
    }

    @inline(__always)
    var isAvailable: Bool { available.load(ordering: .relaxed) }

    @inline(__always)
    func recordSuccess(now: UInt64, how: StaticString) {
        if errorCount.load(ordering: .relaxed) != 0 {
            errorCount.store(0, ordering: .relaxed)
            firstFailureAt.store(0, ordering: .relaxed)
        }
        if !available.load(ordering: .relaxed),
            available.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        {
            append(.available, at: now, detail: "\(how) answered")
        }
    }

    func recordFailure(_ failure: Failure, now: UInt64) {
        if firstFailureAt.load(ordering: .relaxed) == 0 {
            _ = firstFailureAt.compareExchange(expected: 0, desired: now, ordering: .relaxed)
        }
        let count = errorCount.add(failure.weight, ordering: .relaxed).newValue
        guard threshold > 0, count >= threshold, available.load(ordering: .relaxed) else { return }
        if available.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged {
            let first = firstFailureAt.load(ordering: .relaxed)
            let detection = first == 0 || first > now ? 0 : Double(now - first) / 1e6
            append(
                .unavailable, at: now,
                detail:
                    "weighted failures \(count) ≥ \(threshold); \(Self.format(detection)) ms after the first failure",
                firstFailure: first == 0 ? now : first)
        }
    }

    func append(_ kind: BenchEvent.Kind, at now: UInt64, detail: String, firstFailure: UInt64? = nil) {
        let event = BenchEvent(
            atSeconds: seconds(now), target: address.description, kind: kind, detail: detail,
            firstFailureAtSeconds: firstFailure.map(seconds))
        log.withLock {
            if $0.count < Self.maxEvents { $0.append(event) }
        }
    }

    private func seconds(_ time: UInt64) -> Double { time >= origin ? Double(time - origin) / 1e9 : 0 }

    var events: [BenchEvent] { log.withLock { $0 } }

    static func format(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return String(tenths / 10)
    }
}
