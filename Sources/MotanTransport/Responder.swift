import MotanCodec
import MotanLoop
import Synchronization

/// Answers one request, exactly once, on the connection's loop.
///
/// Noncopyable: every answer method is `consuming`, so the compiler rejects a second answer,
/// and an escaping closure cannot capture it. A responder that goes out of scope unanswered
/// answers by itself with errcode 500 ("request dropped"), so a forgotten answer never leaks a
/// slot of the connection's in-flight limit. Answering inside the handler call costs no
/// allocation: the answer is encoded straight into the connection's write batch.
///
/// To answer later (after a timer, from a task), call `detach()` inside the handler and answer
/// through the returned `PendingResponse`. For a oneway request every answer is dropped.
public struct Responder: ~Copyable {
    // Unmanaged because a noncopyable value can skip its deinit (`discard self`) only when it
    // stores trivial fields; unretained because the connection is alive while the handler runs
    // and holds itself alive afterwards while a responder is still out (`endCall`).
    private let connection: Unmanaged<ServerConnection>
    private let ticket: AnswerTicket

    init(connection: ServerConnection, ticket: AnswerTicket) {
        self.connection = .passUnretained(connection)
        self.ticket = ticket
    }

    public var requestID: UInt64 { ticket.requestID }
    public var loop: UVEventLoop { connection._withUnsafeGuaranteedRef { $0.loop } }

    /// Answers with one value.
    public consuming func respond(_ value: SimpleValue) {
        let (connection, ticket) = take()
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, value: value) }
    }

    /// Answers with a value that is already simple-serialized (one value, e.g. an argument
    /// passed through).
    public consuming func respond(serializedValue: UnsafeRawBufferPointer) {
        let (connection, ticket) = take()
        connection._withUnsafeGuaranteedRef {
            $0.answer(ticket, body: serializedValue, gzipped: false, mayCompress: true)
        }
    }

    /// Answers with the request's body as it came (gzip flag included): the zero-copy echo of
    /// a pass-through handler. The body is one simple-serialized value for a one-argument call.
    public consuming func respond(passingThrough request: borrowing RawServerRequest) {
        let (connection, ticket) = take()
        let body = request.frame.body
        let gzipped = request.isGzipped
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, body: body, gzipped: gzipped) }
    }

    /// Answers with one value of a plain request body, as it came: `range` is where the value
    /// lies in the body (e.g. `checkArguments().firstValue`). No copy is made before the write.
    public consuming func respond(passingThrough request: borrowing RawServerRequest, value range: Range<Int>) {
        precondition(!request.isGzipped, "a gzipped body has no plain values to pass through")
        let body = request.frame.body
        precondition(range.lowerBound >= 0 && range.upperBound <= body.count, "range outside the request body")
        let (connection, ticket) = take()
        let value = UnsafeRawBufferPointer(rebasing: body[range])
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, body: value, gzipped: false, mayCompress: true) }
    }

    /// Answers as the server answers arguments that do not decode: errcode 500,
    /// "deserialize arguments fail. …", as motan-go words it.
    public consuming func respond(undecodableArguments error: MotanCodecError) {
        let (connection, ticket) = take()
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, error: ArgumentDecoding.failure(error)) }
    }

    /// Answers with a body that `writeBody` appends straight into the write batch.
    public consuming func respond(writingBody writeBody: (inout [UInt8]) -> Void) {
        let (connection, ticket) = take()
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, writingBody: writeBody) }
    }

    /// Answers with an exception response (`M_e`).
    public consuming func fail(_ error: MotanErrorInfo) {
        let (connection, ticket) = take()
        connection._withUnsafeGuaranteedRef { $0.answer(ticket, error: error) }
    }

    /// Hands the answer over to a heap object that may be answered later, from any thread.
    /// Allocates; handlers that answer inside the call should not detach.
    public consuming func detach() -> PendingResponse {
        let (connection, ticket) = take()
        return PendingResponse(connection: connection.takeUnretainedValue(), ticket: ticket)
    }

    /// Ends the responder without its deinit's "dropped" answer.
    private consuming func take() -> (Unmanaged<ServerConnection>, AnswerTicket) {
        let connection = self.connection
        let ticket = self.ticket
        discard self
        connection._withUnsafeGuaranteedRef { $0.preconditionOnLoop() }
        return (connection, ticket)
    }

    deinit {
        let ticket = self.ticket
        connection._withUnsafeGuaranteedRef { $0.answerDropped(ticket) }
    }
}

/// What a connection needs to answer one request.
struct AnswerTicket: Sendable {
    let requestID: UInt64
    let startedAt: UInt64
    let isOneway: Bool
    /// Which handler call the request had on its connection (`ServerConnection.beginCall`).
    let call: UInt64
}

/// A detached answer: answer it once, from any thread (the answer hops to the connection's
/// loop). A second answer is ignored, logged and counted (`ServerStatistics.duplicateAnswers`);
/// it is not a crash, because a late duplicate (say, a timeout racing a result) is a bug in the
/// handler that must not take the server down. Released unanswered, it answers "request
/// dropped" by itself.
public final class PendingResponse: Sendable {
    private let connection: ServerConnection
    private let ticket: AnswerTicket
    private let answered = Atomic<Bool>(false)

    init(connection: ServerConnection, ticket: AnswerTicket) {
        self.connection = connection
        self.ticket = ticket
    }

    public var requestID: UInt64 { ticket.requestID }
    public var loop: UVEventLoop { connection.loop }
    /// Whether an answer has been given (it may still be on its way to the loop).
    public var isAnswered: Bool { answered.load(ordering: .acquiring) }

    public func respond(_ value: SimpleValue) { complete(with: .success(value)) }

    public func fail(_ error: MotanErrorInfo) { complete(with: .failure(error)) }

    public func complete(with result: Result<SimpleValue, MotanErrorInfo>) {
        guard claim() else { return }
        let connection = self.connection
        let ticket = self.ticket
        connection.onLoop {
            switch result {
            case .success(let value): connection.answer(ticket, value: value)
            case .failure(let error): connection.answer(ticket, error: error)
            }
        }
    }

    /// Answers with an already simple-serialized value. Loop thread only.
    public func respond(serializedValue: UnsafeRawBufferPointer) {
        connection.loop.preconditionInEventLoop()
        guard claim() else { return }
        connection.answer(ticket, body: serializedValue, gzipped: false, mayCompress: true)
    }

    private func claim() -> Bool {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else {
            connection.server.counters.duplicateAnswers.add(1, ordering: .relaxed)
            connection.server.logger.warning(
                "request \(ticket.requestID) answered more than once; later answers are ignored")
            return false
        }
        return true
    }

    deinit {
        guard !answered.load(ordering: .acquiring) else { return }
        let connection = self.connection
        let ticket = self.ticket
        connection.onLoop { connection.answerDropped(ticket) }
    }
}
