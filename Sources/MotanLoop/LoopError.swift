import CLibUV

/// A libuv status code with its symbolic name, e.g. `ECONNREFUSED`.
public struct UVError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    public var name: String { String(cString: uv_err_name(code)) }
    public var message: String { String(cString: uv_strerror(code)) }
    public var description: String { "\(name) (\(message))" }

    public static let eof = UVError(cmotan_uv_eof())
    public static let canceled = UVError(cmotan_uv_ecanceled())
    public static let connectionRefused = UVError(cmotan_uv_econnrefused())
    public static let timedOut = UVError(cmotan_uv_etimedout())
}

/// Why a connection closed. Every connection reports exactly one.
public enum CloseReason: Hashable, Sendable, CustomStringConvertible {
    /// `close()` was called on this side.
    case local
    /// The peer closed its side and we closed ours in response.
    case remoteClosed
    /// The socket failed (reset, broken pipe, ...).
    case socketError(UVError)
    /// The connection attempt did not finish in time.
    case connectTimeout
    /// The bytes received broke the protocol; the text says how.
    case protocolViolation(String)
    /// The event loop shut down while the connection was open.
    case loopShutdown

    public var description: String {
        switch self {
        case .local: return "closed locally"
        case .remoteClosed: return "closed by peer"
        case .socketError(let e): return "socket error \(e)"
        case .connectTimeout: return "connect timed out"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .loopShutdown: return "event loop shut down"
        }
    }
}

/// Errors reported by the loop layer.
public enum LoopError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidAddress(String)
    case bindFailed(address: String, UVError)
    case connectFailed(address: String, UVError)
    case connectTimeout(address: String, milliseconds: UInt64)
    /// A write was pending, or issued, on a connection that closed.
    case connectionClosed(CloseReason)
    case writeFailed(UVError)
    case loopShutDown

    public var description: String {
        switch self {
        case .invalidAddress(let a): return "invalid address '\(a)'"
        case .bindFailed(let a, let e): return "bind to \(a) failed: \(e)"
        case .connectFailed(let a, let e): return "connect to \(a) failed: \(e)"
        case .connectTimeout(let a, let ms): return "connect to \(a) timed out after \(ms) ms"
        case .connectionClosed(let r): return "connection closed: \(r)"
        case .writeFailed(let e): return "write failed: \(e)"
        case .loopShutDown: return "event loop is shut down"
        }
    }
}
