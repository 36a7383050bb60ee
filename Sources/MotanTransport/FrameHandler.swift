import MotanCodec

/// What the connection does once a frame has been handled.
enum FrameDisposition {
    case proceed
    /// Close the connection; the text is the logged reason.
    case close(String)
}

/// One stage of the server's frame path. Stages decorate each other (the heartbeat responder
/// sits in front of the request dispatcher) and run on the connection's loop.
protocol FrameHandler: Sendable {
    func handle(_ frame: FrameView, on connection: ServerConnection) -> FrameDisposition
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension UnsafeRawBufferPointer {
    @inline(__always)
    func bytesEqual(_ other: UnsafeRawBufferPointer) -> Bool {
        guard count == other.count else { return false }
        guard count > 0 else { return true }
        return memcmp(baseAddress!, other.baseAddress!, count) == 0
    }
}
