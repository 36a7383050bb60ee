import Logging
import MotanCodec
import MotanLoop

/// One accepted connection: bytes → frames → handler chain → responses → one batched write.
/// Lives on its loop; nothing here locks or blocks.
final class ServerConnection: TCPConnectionDelegate {
    let connection: TCPConnection
    let server: ServerShared
    private let handler: any FrameHandler
    private var decoder: FrameDecoder
    /// Responses of the current batch, encoded back to back; reused for the connection's life.
    var output: [UInt8] = []
    /// Requests handed to a handler and not answered yet.
    var inFlight = 0
    private var inReadCallback = false

    /// Once the batch holds this much, it goes to the socket mid-read so the buffer stays small.
    private static let batchLimit = 64 * 1024

    var loop: UVEventLoop { connection.loop }

    init(connection: TCPConnection, server: ServerShared, handler: any FrameHandler) {
        self.connection = connection
        self.server = server
        self.handler = handler
        decoder = FrameDecoder(maxContentLength: server.maxContentLength)
        output.reserveCapacity(Self.batchLimit)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        decoder.feed(bytes)
        inReadCallback = true
        defer { inReadCallback = false }
        while connection.state == .open {
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
        connection.flush()
    }

    func connectionDidReadEOF(_ connection: TCPConnection) {
        do {
            try decoder.finish()
        } catch {
            server.logger.debug("peer \(peer) closed inside a frame: \(error)")
        }
        connection.close(.remoteClosed)
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        server.connectionClosed(self)
        server.logger.trace("connection from \(peer) closed: \(reason)")
    }

    /// A handler answered (or a oneway request finished). Answers outside a read callback go
    /// out at once; inside one they join the batch.
    func requestFinished() {
        inFlight -= 1
        if !inReadCallback {
            writeOutput()
            connection.flush()
        }
    }

    private func writeOutput() {
        guard !output.isEmpty else { return }
        if connection.state == .open {
            output.withUnsafeBytes { connection.write($0) }
        }
        output.removeAll(keepingCapacity: true)
    }

    /// Framing errors cannot be resynchronised: log why and drop this connection only.
    private func closeMalformed(_ reason: String) {
        server.counters.malformedCloses.add(1, ordering: .relaxed)
        server.logger.info("closing connection from \(peer): \(reason)")
        writeOutput()
        connection.flush()
        connection.close(.protocolViolation(reason))
    }

    private var peer: String { connection.remoteAddress?.description ?? "?" }
}
