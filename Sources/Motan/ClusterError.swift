import MotanTransport

/// Why a call through a `Cluster` failed.
public enum ClusterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The registry lists no server for the service (or has not answered yet).
    case noProvider(service: String, group: String)
    /// Servers are listed, but every one of them is unavailable (fused; heartbeats are probing).
    case noAvailableProvider(service: String, group: String, listed: Int)
    /// The call reached an endpoint and failed there; `attempts` counts the endpoints tried.
    case call(TransportError, endpoint: String, attempts: Int)
    /// The cluster was closed.
    case closed(service: String)

    /// The transport's error, when the call got as far as an endpoint.
    public var transportError: TransportError? {
        if case .call(let error, _, _) = self { error } else { nil }
    }

    public var description: String {
        switch self {
        case .noProvider(let service, let group):
            "no provider for \(service) in group \(group): the registry lists none — is the server's heartbeat switch (feature.configserver.heartbeat) on?"
        case .noAvailableProvider(let service, let group, let listed):
            "no available provider for \(service) in group \(group): all \(listed) listed endpoints are unavailable (heartbeats are probing them)"
        case .call(let error, let endpoint, let attempts):
            "call to \(endpoint) failed\(attempts > 1 ? " (after \(attempts) attempts)" : ""): \(error)"
        case .closed(let service): "the cluster of \(service) is closed"
        }
    }
}
