/// What a client endpoint reports about its health, in order, from its loop.
public enum EndpointEvent: Sendable, Equatable, CustomStringConvertible {
    /// The weighted failure count reached the threshold (or a keepalive went unanswered).
    case becameUnavailable(reason: String, errorCount: Int, availableFor: Duration)
    /// A heartbeat (or any other success) came back.
    case becameAvailable(reason: String, unavailableFor: Duration)
    case heartbeatSent(keepalive: Bool)
    case heartbeatAnswered(keepalive: Bool)
    case heartbeatFailed(keepalive: Bool, reason: String)

    public var description: String {
        switch self {
        case .becameUnavailable(let reason, let count, let duration):
            return "unavailable (\(reason); error count \(count); was available for \(duration))"
        case .becameAvailable(let reason, let duration):
            return "available (\(reason); was unavailable for \(duration))"
        case .heartbeatSent(let keepalive): return keepalive ? "keepalive sent" : "heartbeat sent"
        case .heartbeatAnswered(let keepalive):
            return keepalive ? "keepalive answered" : "heartbeat answered"
        case .heartbeatFailed(let keepalive, let reason):
            return "\(keepalive ? "keepalive" : "heartbeat") failed: \(reason)"
        }
    }
}
