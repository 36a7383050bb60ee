import MotanCodec
import MotanLoop

/// Every way a transport call or endpoint operation can fail. A call ends with exactly one
/// outcome: a value, one of these, or `.timeout`.
public enum TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No response within the call's deadline.
    case timeout(milliseconds: UInt64)
    /// The endpoint tripped its failure threshold; calls fail fast until a heartbeat revives it.
    case unavailable(endpoint: String)
    /// The connection carrying the call closed before the response arrived.
    case connectionClosed(CloseReason)
    /// Opening a connection to the endpoint failed.
    case connectFailed(LoopError)
    /// Every connection slot is failed and waiting before it may reconnect.
    case noConnection(endpoint: String)
    /// The server answered with an exception response (`M_e`).
    case remote(MotanErrorInfo)
    /// The response could not be decoded.
    case invalidResponse(MotanCodecError)
    /// A response of the wrong kind, e.g. a heartbeat answered by a normal response.
    case unexpectedResponse(String)
    /// The request would exceed the peer's content limit, so it was not sent.
    case requestTooLarge(bytes: Int, limit: Int)
    /// Too many calls are waiting for responses on this endpoint; the call was not sent.
    case tooManyPendingCalls(limit: Int)
    /// The endpoint was closed.
    case endpointClosed
    /// Binding the server failed.
    case bindFailed(LoopError)

    public var description: String {
        switch self {
        case .timeout(let ms): return "call timed out after \(ms) ms"
        case .unavailable(let endpoint): return "endpoint \(endpoint) is unavailable"
        case .connectionClosed(let reason): return "connection closed: \(reason)"
        case .connectFailed(let error): return "\(error)"
        case .noConnection(let endpoint): return "no connection available to \(endpoint)"
        case .remote(let info): return "\(info)"
        case .invalidResponse(let error): return "invalid response: \(error)"
        case .unexpectedResponse(let what): return "unexpected response: \(what)"
        case .requestTooLarge(let bytes, let limit):
            return "request of \(bytes) bytes exceeds the limit of \(limit)"
        case .tooManyPendingCalls(let limit): return "more than \(limit) calls pending"
        case .endpointClosed: return "endpoint is closed"
        case .bindFailed(let error): return "\(error)"
        }
    }
}
