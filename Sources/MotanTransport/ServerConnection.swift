import Logging
import MotanCodec
import MotanLoop
import Synchronization

/// One accepted connection: bytes → frames → handler chain → responses → one batched write.
/// Lives on its loop; nothing here locks or blocks.
///
/// Memory stays bounded by the watermarks: once the unsent answers pass the high watermark the
/// connection stops reading and stops taking frames out of the decoder, and starts again when
/// the peer has drained them below the low watermark.
final class ServerConnection: TCPConnectionDelegate, @unchecked Sendable {
    let connection: TCPConnection
    let server: ServerShared
    private let handler: ServerFrameChain
    /// Behind a pointer like `hot`: decoding spans the handler calls, which as a stored
    /// property would be a tracked exclusive access on every read.
    private let decoder: UnsafeMutablePointer<FrameDecoder>
    /// The pooled chunk the current batch of responses is encoded into (at `hot.cursor`);
    /// handed to the connection (no copy) when the batch is written or the chunk is full.
    private var out: LoopBuffer? {
        get { hot.pointee.out }
        set { hot.pointee.out = newValue }
    }
    /// What every request touches, behind a pointer of this connection's own, used only on its
    /// loop: so these accesses need none of the dynamic exclusivity checks (and none of the
    /// retains) that stored properties of a class get.
    private let hot: UnsafeMutablePointer<HotState>
    /// For encoders that append to an array (custom heartbeat factories, `writingBody`, error
    /// responses); reused, so those answers do not allocate either.
    private var scratch: [UInt8] = []
    /// The loop's zlib streams, looked up on the first response worth compressing.
    private var gzip: GzipContext?
    private var compressed: [UInt8] = []
    struct HotState {
        /// The batch chunk (see `out`).
        var out: LoopBuffer? = nil
        /// Next free byte of the batch chunk, its end, and the first byte not yet recorded in
        /// the chunk's writer index.
        var cursor: UnsafeMutableRawPointer? = nil
        var chunkEnd: UnsafeMutableRawPointer? = nil
        var chunkRecorded: UnsafeMutableRawPointer? = nil
        /// The loop's time for the read being processed (libuv's clock stands still in a callback).
        var batchNow: UInt64 = 0
        /// Requests handed to a handler and not answered yet.
        var inFlight = 0
        /// Requests dispatched in this read, added to the shared counter once per read.
        var uncountedRequests = 0
        /// The request whose handler is running, and whether it has been answered: an answer
        /// given inside the call needs no bookkeeping beyond this.
        var currentCall: UInt64 = 0
        var currentCallAnswered = false
        var nextCall: UInt64 = 1
        var inProcessing = false
        /// Reading stopped because the peer does not take our answers.
        var readPaused = false
        /// Closing after the writes: no more frames are taken.
        var finishing = false
        /// The array on-loop handlers get their arguments in, emptied and reused from request to
        /// request, so decoding arguments does not allocate one per request.
        var argumentStorage: [SimpleValue] = []
    }

    /// Requests handed to a handler and not answered yet.
    var inFlight: Int { hot.pointee.inFlight }
    /// Requests whose handler returned unanswered (held or detached responders, async
    /// handlers). While there are any, the connection keeps itself alive, because responders
    /// refer to it unretained. Atomic because the last ones may end off the loop, once the loop
    /// has shut down and refuses their answers.
    private let escaped = Atomic<Int>(0)
    private var inProcessing: Bool {
        get { hot.pointee.inProcessing }
        set { hot.pointee.inProcessing = newValue }
    }
    private var readPaused: Bool {
        get { hot.pointee.readPaused }
        set { hot.pointee.readPaused = newValue }
    }
    /// The peer half-closed: answer what was read, then close.
    private var peerFinished = false
    private var peerFinishedDeadline: LoopTimer?
    private var closingGracefully = false
    /// A peer that never takes its last answers does not hold the connection open forever.
    private var closeDeadline: LoopTimer?

    /// The largest scratch buffer kept between answers.
    private static let retainedScratchCapacity = 64 * 1024
    /// The most argument slots kept between requests.
    private static let retainedArgumentCapacity = 64

    var loop: UVEventLoop { connection.loop }
    /// The loop outlives its connections: no reference count for the checks every answer makes.
    private let eventLoop: Unmanaged<UVEventLoop>

    /// Traps unless called on the connection's loop.
    func preconditionOnLoop() { eventLoop._withUnsafeGuaranteedRef { $0.preconditionInEventLoop() } }

    init(connection: TCPConnection, server: ServerShared, handler: ServerFrameChain) {
        self.connection = connection
        self.server = server
        self.handler = handler
        eventLoop = .passUnretained(connection.loop)
        decoder = .allocate(capacity: 1)
        decoder.initialize(to: FrameDecoder(maxContentLength: server.maxContentLength))
        hot = .allocate(capacity: 1)
        hot.initialize(to: HotState())
        connection.highWatermark = server.writeHighWatermark
        connection.lowWatermark = server.writeLowWatermark
    }

    deinit {
        decoder.deinitialize(count: 1)
        decoder.deallocate()
        hot.deinitialize(count: 1)
        hot.deallocate()
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        server.counters.reads.add(1, ordering: .relaxed)
        processFrames(bytes)
    }

    /// Decodes the frames of `bytes` (where they lie in the read buffer), after any the decoder
    /// still holds, until it needs more bytes or the peer stops draining our answers; then
    /// writes the batch with one flush.
    private func processFrames(_ bytes: UnsafeRawBufferPointer) {
        guard connection.state == .open, !hot.pointee.finishing else {
            // Kept for nothing but `finish()`'s account of a stream that ended inside a frame.
            decoder.pointee.feed(bytes)
            return
        }
        inProcessing = true
        hot.pointee.batchNow = loop.now
        var closeReason: String?
        do {
            try decoder.pointee.decode(bytes) { frame in
                if case .close(let reason) = handler.handle(frame, on: self) {
                    closeReason = reason
                    return false
                }
                // Nothing in a handler call closes the connection but `closeAfterWrites`.
                return !hot.pointee.readPaused && !hot.pointee.finishing
            }
        } catch {
            closeReason = error.description
        }
        inProcessing = false
        let requests = hot.pointee.uncountedRequests
        if requests > 0 {
            server.counters.requests.add(requests, ordering: .relaxed)
            hot.pointee.uncountedRequests = 0
        }
        if let closeReason {
            closeMalformed(closeReason)
            return
        }
        writeOutput()
        flush()
    }

    func connectionWritabilityChanged(_ connection: TCPConnection, isWritable: Bool) {
        if !isWritable {
            guard !readPaused else { return }
            readPaused = true
            server.counters.readPauses.add(1, ordering: .relaxed)
            connection.stopReading()
        } else {
            guard readPaused else { return }
            readPaused = false
            // Frames left in the decoder when we paused come first; inside frame processing
            // (never re-entered) the running loop simply goes on taking them.
            if !inProcessing { processFrames(UnsafeRawBufferPointer(start: nil, count: 0)) }
            if !readPaused && !peerFinished { connection.startReading() }
        }
    }

    func connectionDidReadEOF(_ connection: TCPConnection) {
        do {
            try decoder.pointee.finish()
        } catch {
            server.logger.debug("peer \(peer) closed inside a frame: \(error)")
        }
        peerFinished = true
        if inFlight > 0 {
            peerFinishedDeadline = loop.scheduleTimer(after: server.answerDeadlineAfterPeerClose) {
                [weak self] in
                guard let self else { return }
                self.server.logger.info(
                    "peer \(self.peer) closed; \(self.inFlight) answers not ready in time are dropped")
                self.connection.close(.remoteClosed)
            }
        } else {
            // Not from inside the EOF callback: a write shutdown there makes the connection
            // close at once, before the queued answers are out.
            _ = loop.execute { [self] in closeAfterWrites(.remoteClosed) }
        }
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        peerFinishedDeadline?.cancel()
        peerFinishedDeadline = nil
        closeDeadline?.cancel()
        closeDeadline = nil
        setChunk(nil)
        server.connectionClosed(self)
        server.logger.trace("connection from \(peer) closed: \(reason)")
    }

    // MARK: answers

    /// Starts a request's handler call; the ticket it returns identifies the answer.
    func beginCall(requestID: UInt64, startedAt: UInt64, isOneway: Bool) -> AnswerTicket {
        let state = hot
        state.pointee.inFlight += 1
        let call = state.pointee.nextCall
        state.pointee.nextCall &+= 1
        state.pointee.currentCall = call
        state.pointee.currentCallAnswered = false
        return AnswerTicket(requestID: requestID, startedAt: startedAt, isOneway: isOneway, call: call)
    }

    /// An empty array for a request's arguments, with the capacity earlier requests left.
    func takeArgumentStorage() -> [SimpleValue] {
        var storage: [SimpleValue] = []
        swap(&storage, &hot.pointee.argumentStorage)
        return storage
    }

    /// Takes back the arguments array once the handler returned. The values go now (a handler
    /// that kept them holds its own copy); the storage is kept unless it grew large.
    func recycleArgumentStorage(_ arguments: consuming [SimpleValue]) {
        var storage = arguments
        guard storage.capacity <= Self.retainedArgumentCapacity else { return }
        // Element by element: for the few arguments a request has this is cheaper than the
        // general `removeAll(keepingCapacity:)`, and it too keeps the storage.
        while storage.popLast() != nil {}
        swap(&storage, &hot.pointee.argumentStorage)
    }

    /// The handler returned: an unanswered request now has a responder out there, which refers
    /// to this connection unretained, so the connection holds itself until it is answered.
    func endCall() {
        hot.pointee.currentCall = 0
        guard !hot.pointee.currentCallAnswered else { return }
        server.counters.inFlight.add(1, ordering: .relaxed)
        if escaped.add(1, ordering: .relaxed).newValue == 1 { _ = Unmanaged.passUnretained(self).retain() }
    }

    /// Answers with a body that is already in its wire form (`gzipped`: gzip data). A body
    /// the handler produced (`mayCompress`) is compressed when the server is configured so.
    func answer(_ ticket: AnswerTicket, body: UnsafeRawBufferPointer, gzipped: Bool, mayCompress: Bool = false) {
        if !ticket.isOneway {
            writeResponse(ticket, body: body, gzipped: gzipped, mayCompress: mayCompress)
        }
        requestFinished(ticket)
    }

    func answer(_ ticket: AnswerTicket, writingBody writeBody: (inout [UInt8]) -> Void) {
        if !ticket.isOneway {
            var bytes: [UInt8] = []
            swap(&bytes, &scratch)
            bytes.removeAll(keepingCapacity: true)
            writeBody(&bytes)
            bytes.withUnsafeBytes { writeResponse(ticket, body: $0, gzipped: false, mayCompress: true) }
            if bytes.capacity <= Self.retainedScratchCapacity { swap(&bytes, &scratch) }
        }
        requestFinished(ticket)
    }

    /// Answers with one value, encoded straight into the batch chunk unless it is big enough
    /// to be compressed.
    func answer(_ ticket: AnswerTicket, value: borrowing SimpleValue) {
        if !ticket.isOneway {
            let bodyCount = SimpleSerialization.encodedCount(value)
            if compresses(bodyCount) {
                return answer(ticket) { SimpleSerialization.encode(copy value, into: &$0) }
            }
            writeResponseFrame(ticket, bodyCount: bodyCount, gzipped: false) {
                SimpleSerialization.encode(copy value, to: $0)
            }
        }
        requestFinished(ticket)
    }

    /// Whether a body the handler produced goes out gzipped, as the server is configured.
    private func compresses(_ bodyCount: Int) -> Bool {
        let threshold = server.gzipResponsesAbove
        return threshold > 0 && bodyCount > threshold
    }

    private func writeResponse(
        _ ticket: AnswerTicket, body: UnsafeRawBufferPointer, gzipped: Bool, mayCompress: Bool
    ) {
        if mayCompress && !gzipped && compresses(body.count) && writeCompressed(ticket, body) { return }
        writeResponseFrame(ticket, bodyCount: body.count, gzipped: gzipped) { destination in
            if let source = body.baseAddress, body.count > 0 {
                destination.baseAddress!.copyMemory(from: source, byteCount: body.count)
            }
        }
    }

    /// One response frame in the batch chunk: the head here, the body by `writeBody` into
    /// exactly `bodyCount` bytes right after it.
    @inline(__always)
    private func writeResponseFrame(
        _ ticket: AnswerTicket, bodyCount: Int, gzipped: Bool, _ writeBody: (UnsafeMutableRawBufferPointer) -> Void
    ) {
        let processTime = processTime(ticket)
        let total = FrameEncoder.responseOverhead(processTime: processTime) + bodyCount
        let start = reserve(total)
        let head = FrameEncoder.writeResponseHead(
            requestID: ticket.requestID, processTime: processTime, bodyCount: bodyCount, gzipped: gzipped, to: start)
        writeBody(UnsafeMutableRawBufferPointer(start: start + head, count: bodyCount))
        commit(total)
    }

    /// Compresses through the loop's reused zlib streams; false (the body then goes out plain,
    /// as Java does) if compression fails.
    private func writeCompressed(_ ticket: AnswerTicket, _ body: UnsafeRawBufferPointer) -> Bool {
        var output: [UInt8] = []
        swap(&output, &compressed)
        output.removeAll(keepingCapacity: true)
        defer { if output.capacity <= Self.retainedScratchCapacity { swap(&output, &compressed) } }
        do {
            try gzipContext().compress(body, into: &output)
        } catch {
            return false
        }
        output.withUnsafeBytes { writeResponse(ticket, body: $0, gzipped: true, mayCompress: false) }
        return true
    }

    private func gzipContext() -> GzipContext {
        if let gzip { return gzip }
        let context = loop.local(LoopGzip.self) { LoopGzip() }.context
        gzip = context
        return context
    }

    func answer(_ ticket: AnswerTicket, error: MotanErrorInfo) {
        if !ticket.isOneway {
            let processTime = processTime(ticket)
            appendEncoded {
                FrameEncoder.encodeErrorResponse(
                    requestID: ticket.requestID, error: error, processTime: processTime, into: &$0)
            }
        }
        requestFinished(ticket)
    }

    /// A responder went away unanswered: answer for it, so the caller is not left waiting and
    /// the in-flight slot comes back. Any thread.
    func answerDropped(_ ticket: AnswerTicket) {
        onLoop { [self] in
            if !ticket.isOneway {
                server.counters.droppedAnswers.add(1, ordering: .relaxed)
                server.logger.warning("request \(ticket.requestID) from \(peer) was dropped without an answer")
            }
            answer(
                ticket,
                error: MotanErrorInfo(
                    errcode: ServerErrorCode.internalError,
                    errmsg: "request dropped: the provider returned no answer",
                    errtype: MotanErrorInfo.serviceType))
        }
    }

    /// Runs `work` on the loop: now when already there, else through `execute`. If the loop is
    /// gone, the connection is too; only the drain count needs settling.
    func onLoop(_ work: @escaping @Sendable () -> Void) {
        if loop.inEventLoop {
            work()
        } else if !loop.execute(work) {
            // The loop has shut down (its sweep closed this connection): the answer has nowhere
            // to go, but the hold it kept on the connection must still end.
            server.counters.inFlight.subtract(1, ordering: .relaxed)
            releaseEscaped()
        }
    }

    /// One held or detached request is over; the last one ends the connection's hold on itself.
    private func releaseEscaped() {
        if escaped.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            Unmanaged.passUnretained(self).release()
        }
    }

    // MARK: writing responses

    /// The heartbeat answer, straight into the batch.
    func writeHeartbeatResponse(requestID: UInt64) {
        let start = reserve(FrameEncoder.heartbeatResponseSize)
        FrameEncoder.writeHeartbeatResponse(requestID: requestID, to: start)
        commit(FrameEncoder.heartbeatResponseSize)
    }

    /// An error response for a request no handler saw.
    func writeErrorResponse(requestID: UInt64, error: MotanErrorInfo, processTime: Int?) {
        appendEncoded {
            FrameEncoder.encodeErrorResponse(requestID: requestID, error: error, processTime: processTime, into: &$0)
        }
    }

    /// An error response whose errmsg is `prefix` + `middle` (wire bytes) + `suffix`, errtype 1.
    func writeErrorResponse(
        requestID: UInt64, errcode: Int, prefix: StaticString, middle: UnsafeRawBufferPointer,
        suffix: StaticString, processTime: Int?
    ) {
        appendEncoded {
            FrameEncoder.encodeErrorResponse(
                requestID: requestID, errcode: errcode, errtype: MotanErrorInfo.serviceType, messagePrefix: prefix,
                messageMiddle: middle, messageSuffix: suffix, processTime: processTime, into: &$0)
        }
    }

    /// Runs an array encoder on the reused scratch buffer and adds what it wrote to the batch.
    func appendEncoded(_ encode: (inout [UInt8]) -> Void) {
        var bytes: [UInt8] = []
        swap(&bytes, &scratch)
        bytes.removeAll(keepingCapacity: true)
        encode(&bytes)
        bytes.withUnsafeBytes { encoded in
            guard let source = encoded.baseAddress, encoded.count > 0 else { return }
            reserve(encoded.count).copyMemory(from: source, byteCount: encoded.count)
            commit(encoded.count)
        }
        if bytes.capacity <= Self.retainedScratchCapacity { swap(&bytes, &scratch) }
    }

    /// Where `count` more bytes of the batch go: a full chunk goes to the connection (queued,
    /// not yet flushed) and a fresh one comes from the loop's pool. `commit` counts them.
    @inline(__always)
    private func reserve(_ count: Int) -> UnsafeMutableRawPointer {
        let state = hot
        if let cursor = state.pointee.cursor, let end = state.pointee.chunkEnd, cursor.distance(to: end) >= count {
            return cursor
        }
        return reserveChunk(count)
    }

    @inline(__always)
    private func commit(_ count: Int) {
        hot.pointee.cursor! += count
    }

    private func reserveChunk(_ count: Int) -> UnsafeMutableRawPointer {
        writeOutput()
        if let chunk = out, chunk.writableBytes < count {
            setChunk(nil)
            loop.recycleWriteBuffer(chunk)
        }
        if out == nil { setChunk(loop.takeWriteBuffer(minimumCapacity: count)) }
        return hot.pointee.cursor!
    }

    private func setChunk(_ chunk: LoopBuffer?) {
        out = chunk
        if let chunk {
            let start = chunk.base + chunk.writerIndex
            hot.pointee.cursor = start
            hot.pointee.chunkRecorded = start
            hot.pointee.chunkEnd = chunk.base + chunk.capacity
        } else {
            hot.pointee.cursor = nil
            hot.pointee.chunkRecorded = nil
            hot.pointee.chunkEnd = nil
        }
    }

    /// Moves the chunk's writer index over what was written through the cursor.
    private func recordWritten() {
        guard let chunk = out, let cursor = hot.pointee.cursor, let recorded = hot.pointee.chunkRecorded else { return }
        let written = recorded.distance(to: cursor)
        guard written > 0 else { return }
        chunk.moveWriterIndex(forwardBy: written)
        hot.pointee.chunkRecorded = cursor
    }

    /// In frame processing the read's time; answers given later read the clock.
    var now: UInt64 { inProcessing ? hot.pointee.batchNow : loop.now }

    func countRequest() { hot.pointee.uncountedRequests += 1 }

    private func processTime(_ ticket: AnswerTicket) -> Int { Int(now &- ticket.startedAt) }

    /// Answers outside frame processing go out at once; inside it they join the batch.
    private func requestFinished(_ ticket: AnswerTicket) {
        let state = hot
        state.pointee.inFlight -= 1
        let wasEscaped = ticket.call != state.pointee.currentCall
        if !wasEscaped { state.pointee.currentCallAnswered = true }
        if !inProcessing {
            writeOutput()
            flush()
        }
        if peerFinished && inFlight == 0 && connection.state == .open {
            closeAfterWrites(.remoteClosed)
        }
        if wasEscaped {
            server.counters.inFlight.subtract(1, ordering: .relaxed)
            // Last: this may free the connection once it is closed.
            releaseEscaped()
        }
    }

    private func writeOutput() {
        recordWritten()
        guard let chunk = out, chunk.readableBytes > 0 else { return }
        if connection.state == .open && !connection.isWriteShutDown {
            setChunk(nil)
            server.counters.writes.add(1, ordering: .relaxed)
            connection.write(buffer: chunk)
        } else {
            // Nothing more goes out on this connection; the chunk is kept for nothing.
            chunk.clear()
            setChunk(chunk)
        }
    }

    private func flush() {
        guard connection.state == .open else { return }
        connection.flush()
    }

    // MARK: closing

    /// Sends what is queued, shuts down our side, then closes: no answer is cut off.
    func closeAfterWrites(_ reason: CloseReason) {
        guard connection.state == .open, !closingGracefully else { return }
        closingGracefully = true
        hot.pointee.finishing = true
        peerFinishedDeadline?.cancel()
        peerFinishedDeadline = nil
        writeOutput()
        connection.shutdownWrite { [connection] _ in connection.close(reason) }
        closeDeadline = loop.scheduleTimer(after: server.answerDeadlineAfterPeerClose) { [connection] in
            connection.close(reason)
        }
    }

    /// Framing errors cannot be resynchronised: log why and drop this connection only.
    private func closeMalformed(_ reason: String) {
        server.counters.malformedCloses.add(1, ordering: .relaxed)
        server.logger.info("closing connection from \(peer): \(reason)")
        writeOutput()
        flush()
        connection.close(.protocolViolation(reason))
    }

    private var peer: String { connection.remoteAddress?.description ?? "?" }
}

/// One set of zlib streams per loop for compressing responses: deflate state is about 256 KiB,
/// too much to keep per connection. Used only on its loop.
final class LoopGzip: LoopLocal, @unchecked Sendable {
    let context = GzipContext()
    func loopDidFinish() {}
}
