import Logging
import MotanCodec
import MotanLoop

/// One accepted connection: bytes → frames → handler chain → responses → one batched write.
/// Lives on its loop; nothing here locks or blocks.
///
/// Memory stays bounded by the watermarks: once the unsent answers pass the high watermark the
/// connection stops reading and stops taking frames out of the decoder, and starts again when
/// the peer has drained them below the low watermark.
final class ServerConnection: TCPConnectionDelegate, @unchecked Sendable {
    let connection: TCPConnection
    let server: ServerShared
    private let handler: any FrameHandler
    private var decoder: FrameDecoder
    /// Responses of the current batch, encoded back to back; reused for the connection's life.
    var output: [UInt8] = []
    /// Requests handed to a handler and not answered yet.
    private(set) var inFlight = 0
    private var inProcessing = false
    /// Reading stopped because the peer does not take our answers.
    private var readPaused = false
    /// The peer half-closed: answer what was read, then close.
    private var peerFinished = false
    private var peerFinishedDeadline: LoopTimer?
    private var closingGracefully = false
    /// A peer that never takes its last answers does not hold the connection open forever.
    private var closeDeadline: LoopTimer?

    /// Once the batch holds this much, it goes to the socket mid-read so the buffer stays small.
    private static let batchLimit = 64 * 1024

    var loop: UVEventLoop { connection.loop }

    init(connection: TCPConnection, server: ServerShared, handler: any FrameHandler) {
        self.connection = connection
        self.server = server
        self.handler = handler
        decoder = FrameDecoder(maxContentLength: server.maxContentLength)
        connection.highWatermark = server.writeHighWatermark
        connection.lowWatermark = server.writeLowWatermark
        output.reserveCapacity(Self.batchLimit)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        server.counters.reads.add(1, ordering: .relaxed)
        decoder.feed(bytes)
        processFrames()
    }

    /// Takes frames out of the decoder until it needs more bytes or the peer stops draining
    /// our answers, then writes the batch with one flush.
    private func processFrames() {
        inProcessing = true
        defer { inProcessing = false }
        while connection.state == .open && !readPaused {
            let disposition: FrameDisposition?
            do {
                disposition = try decoder.withNext { frame in handler.handle(frame, on: self) }
            } catch {
                closeMalformed(error.description)
                return
            }
            guard let disposition else { break }
            if case .close(let reason) = disposition {
                closeMalformed(reason)
                return
            }
            if output.count >= Self.batchLimit { writeOutput() }
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
            // Frames left in the decoder when we paused come first.
            processFrames()
            if !readPaused && !peerFinished { connection.startReading() }
        }
    }

    func connectionDidReadEOF(_ connection: TCPConnection) {
        do {
            try decoder.finish()
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
        server.connectionClosed(self)
        server.logger.trace("connection from \(peer) closed: \(reason)")
    }

    // MARK: answers

    /// Counts a request handed to a handler; its answer (or drop) ends it.
    func requestStarted() {
        inFlight += 1
        server.counters.inFlight.add(1, ordering: .relaxed)
    }

    func answer(
        _ ticket: AnswerTicket, gzipped: Bool = false, writingBody writeBody: (inout [UInt8]) -> Void
    ) {
        if !ticket.isOneway {
            let headerAt = output.count
            FrameEncoder.encodeResponse(
                requestID: ticket.requestID, processTime: processTime(ticket), into: &output,
                writeBody: writeBody)
            if gzipped { output[headerAt + 2] |= MessageFlags.gzip.rawValue }
        }
        requestFinished()
    }

    func answer(_ ticket: AnswerTicket, error: MotanErrorInfo) {
        if !ticket.isOneway {
            FrameEncoder.encodeErrorResponse(
                requestID: ticket.requestID, error: error, processTime: processTime(ticket), into: &output)
        }
        requestFinished()
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
            server.counters.inFlight.subtract(1, ordering: .relaxed)
        }
    }

    private func processTime(_ ticket: AnswerTicket) -> Int { Int(loop.now &- ticket.startedAt) }

    /// Answers outside frame processing go out at once; inside it they join the batch.
    private func requestFinished() {
        inFlight -= 1
        server.counters.inFlight.subtract(1, ordering: .relaxed)
        if !inProcessing {
            writeOutput()
            flush()
        }
        if peerFinished && inFlight == 0 && connection.state == .open {
            closeAfterWrites(.remoteClosed)
        }
    }

    private func writeOutput() {
        guard !output.isEmpty else { return }
        if connection.state == .open && !connection.isWriteShutDown {
            server.counters.writes.add(1, ordering: .relaxed)
            output.withUnsafeBytes { connection.write($0) }
        }
        output.removeAll(keepingCapacity: true)
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
