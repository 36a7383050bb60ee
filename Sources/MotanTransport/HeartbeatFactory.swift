import MotanCodec

/// Makes and recognises heartbeat frames. Motan lets the heartbeat format be swapped (Java's
/// `HeartbeatFactory` extension point); the motan2 heartbeat frame is the default.
public protocol HeartbeatFactory: Sendable {
    /// Whether `frame`, a request, is a heartbeat the server answers itself.
    func isHeartbeatRequest(_ frame: FrameView) -> Bool
    /// Whether `frame`, a response, answers a heartbeat.
    func isHeartbeatResponse(_ frame: FrameView) -> Bool
    /// Appends a heartbeat request carrying `requestID` to `output`.
    func encodeHeartbeatRequest(requestID: UInt64, into output: inout [UInt8])
    /// Appends the answer to the heartbeat `request` to `output`.
    func encodeHeartbeatResponse(to request: FrameView, into output: inout [UInt8])
}

/// The motan2 heartbeat: any frame with bit 0x10 set, whatever its proxy bit, meta or body.
/// Sends motan-go's form (0x12 / 0x13, serialization 0x30), which Java accepts too.
public struct Motan2HeartbeatFactory: HeartbeatFactory {
    public init() {}

    public func isHeartbeatRequest(_ frame: FrameView) -> Bool {
        frame.isHeartbeat && !frame.isResponse
    }

    public func isHeartbeatResponse(_ frame: FrameView) -> Bool {
        frame.isHeartbeat && frame.isResponse
    }

    public func encodeHeartbeatRequest(requestID: UInt64, into output: inout [UInt8]) {
        FrameEncoder.encodeHeartbeatRequest(requestID: requestID, into: &output)
    }

    public func encodeHeartbeatResponse(to request: FrameView, into output: inout [UInt8]) {
        FrameEncoder.encodeHeartbeatResponse(requestID: request.requestID, into: &output)
    }
}
