import MotanTransport

/// How a cluster picks among its available endpoints.
public enum LoadBalance: Sendable, Hashable {
    /// Each call takes the next available endpoint in turn.
    case roundRobin
    /// A uniformly random available endpoint.
    case random
    /// The available endpoint with the fewest calls in flight from this cluster; ties go round robin.
    case leastActive
}

/// What a cluster does when a call fails on an endpoint.
public enum HAStrategy: Sendable, Hashable {
    /// The first failure is the call's result.
    case failfast
    /// A failure that is safe to retry is retried on another endpoint, up to `retries` times.
    ///
    /// Safe means the server certainly did not run the request: the endpoint was unavailable, had
    /// or could make no connection, was closed, refused locally (too many pending calls), or the
    /// server answered "provider not exist", "rejected" or "shutting down". Business and service errors are the
    /// call's answer and are never retried. Timeouts and connections closed while the call was out
    /// are retried only with `retryPossiblyDelivered`: the server may have run the request
    /// already, and a slow server given twice the work gets slower, so the default is not to.
    case failover(retries: Int, retryPossiblyDelivered: Bool = false)

    /// Java's default: failover, two retries.
    public static let failover = HAStrategy.failover(retries: 2)

    func mayRetry(_ error: TransportError) -> Bool {
        guard case .failover(_, let possiblyDelivered) = self else { return false }
        switch error {
        case .unavailable, .noConnection, .connectFailed, .endpointClosed, .tooManyPendingCalls:
            return true
        case .timeout, .connectionClosed:
            return possiblyDelivered
        case .remote(let info):
            return [ServerErrorCode.providerNotExist, ServerErrorCode.rejected, ServerErrorCode.shuttingDown]
                .contains(info.errcode)
        case .invalidResponse, .unexpectedResponse, .requestTooLarge, .bindFailed:
            return false
        }
    }

    var retries: Int {
        if case .failover(let retries, _) = self { max(0, retries) } else { 0 }
    }
}
