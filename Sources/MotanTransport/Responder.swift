import MotanCodec
import MotanLoop

/// Answers one request. Call exactly one of the `respond`/`fail` methods exactly once, on the
/// connection's loop, either inside the handler (the answer joins the current write batch) or
/// later (it is written and flushed at once). For a oneway request every answer is dropped.
public struct Responder: @unchecked Sendable {
    let connection: ServerConnection
    public let requestID: UInt64
    let startedAt: UInt64
    let isOneway: Bool

    public var loop: UVEventLoop { connection.loop }

    /// Answers with one value.
    public func respond(_ value: SimpleValue) {
        respond { SimpleSerialization.encode(value, into: &$0) }
    }

    /// Answers with a value that is already simple-serialized, e.g. an argument echoed back.
    public func respond(serializedValue: UnsafeRawBufferPointer) {
        respond { $0.append(contentsOf: serializedValue.assumingMemoryBound(to: UInt8.self)) }
    }

    /// Answers with a body that `writeBody` appends straight into the write batch.
    public func respond(writingBody writeBody: (inout [UInt8]) -> Void) {
        connection.loop.preconditionInEventLoop()
        if !isOneway {
            let processTime = Int(connection.loop.now &- startedAt)
            FrameEncoder.encodeResponse(
                requestID: requestID, processTime: processTime, into: &connection.output,
                writeBody: writeBody)
        }
        connection.requestFinished()
    }

    /// Answers with an exception response.
    public func fail(_ error: MotanErrorInfo) {
        connection.loop.preconditionInEventLoop()
        if !isOneway {
            let processTime = Int(connection.loop.now &- startedAt)
            FrameEncoder.encodeErrorResponse(
                requestID: requestID, error: error, processTime: processTime, into: &connection.output)
        }
        connection.requestFinished()
    }

    /// Answers from any thread: hops to the loop when needed.
    public func complete(with result: Result<SimpleValue, MotanErrorInfo>) {
        guard connection.loop.inEventLoop else {
            connection.loop.execute { self.complete(with: result) }
            return
        }
        switch result {
        case .success(let value): respond(value)
        case .failure(let error): fail(error)
        }
    }
}
