/// Motan's definition of "available": the consecutive, weighted failure count is below the
/// threshold. A connected socket alone does not make an endpoint available, and a broken one
/// does not make it unavailable until the failures add up.
struct AvailabilityTracker {
    /// The failures that count, with Motan's weights.
    enum Failure: CustomStringConvertible {
        case callFailed
        case timeout
        case connectFailed
        case noConnection

        var weight: Int {
            switch self {
            case .callFailed, .timeout: return 1
            case .connectFailed: return 2
            case .noConnection: return 3
            }
        }

        var description: String {
            switch self {
            case .callFailed: return "call failed"
            case .timeout: return "call timed out"
            case .connectFailed: return "connect failed"
            case .noConnection: return "no connection available"
            }
        }
    }

    enum Transition: Equatable {
        /// `after` is how long the previous state lasted, in loop milliseconds.
        case becameUnavailable(after: UInt64)
        case becameAvailable(after: UInt64)
    }

    /// ≤ 0 disables fusing.
    let threshold: Int
    private(set) var errorCount = 0
    private(set) var isAvailable = true
    private(set) var changedAt: UInt64

    init(threshold: Int, now: UInt64) {
        self.threshold = threshold
        changedAt = now
    }

    /// Restarts the clock of the current state (the tracker may be made off the loop).
    mutating func startClock(now: UInt64) {
        changedAt = now
    }

    mutating func record(_ failure: Failure, now: UInt64) -> Transition? {
        errorCount += failure.weight
        guard isAvailable, threshold > 0, errorCount >= threshold else { return nil }
        return becomeUnavailable(now: now)
    }

    /// Any success, including an answered heartbeat or a business exception, resets the count.
    mutating func recordSuccess(now: UInt64) -> Transition? {
        errorCount = 0
        guard !isAvailable else { return nil }
        isAvailable = true
        defer { changedAt = now }
        return .becameAvailable(after: now &- changedAt)
    }

    /// For failures that prove the link is dead whatever the count says (a keepalive timeout).
    mutating func forceUnavailable(now: UInt64) -> Transition? {
        guard isAvailable else { return nil }
        return becomeUnavailable(now: now)
    }

    private mutating func becomeUnavailable(now: UInt64) -> Transition {
        isAvailable = false
        defer { changedAt = now }
        return .becameUnavailable(after: now &- changedAt)
    }
}
