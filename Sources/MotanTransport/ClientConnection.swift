import MotanCodec
import MotanLoop

/// One TCP connection of a client endpoint, from connect to close. A reconnect makes a new
/// object, so a late callback of an old socket can never touch the new one.
final class ClientConnection: TCPConnectionDelegate {
    enum State { case connecting, open, closed }

    /// Pending calls remember this, so that a drop fails exactly the calls it carried.
    let id: UInt64
    let loop: UVEventLoop
    weak var endpoint: ClientEndpoint?
    private(set) var state: State = .connecting
    private var tcp: TCPConnection?
    private var decoder: FrameDecoder
    /// Frames written while the connect is still under way.
    private var waiting: [UInt8] = []
    private var abandoned = false
    private var inReadCallback = false
    private var needsFlush = false
    /// Loop time of the last byte read: idle keepalive measures from here.
    private(set) var lastReadAt: UInt64
    var keepaliveInFlight = false

    private let address: TCPAddress
    private let connectTimeout: Duration

    init(
        id: UInt64, endpoint: ClientEndpoint, address: TCPAddress, connectTimeout: Duration,
        maxContentLength: Int
    ) {
        self.id = id
        self.endpoint = endpoint
        self.address = address
        self.connectTimeout = connectTimeout
        loop = endpoint.loop
        decoder = FrameDecoder(maxContentLength: maxContentLength)
        lastReadAt = endpoint.loop.now
    }

    func start() {
        TCPConnection.connect(to: address, on: loop, timeout: connectTimeout, delegate: self) {
            [self] result in
            switch result {
            case .success(let tcp):
                if abandoned {
                    tcp.close(.local)
                    return
                }
                self.tcp = tcp
                state = .open
                lastReadAt = loop.now
                if !waiting.isEmpty {
                    // The connection flushes right after this callback returns.
                    tcp.write(waiting)
                    waiting = []
                }
                endpoint?.connectionOpened(self)
            case .failure(let error):
                state = .closed
                waiting = []
                if !abandoned { endpoint?.connectionFailed(self, error: error) }
            }
        }
    }

    /// Queues one encoded frame. Inside a read callback the flush waits for the end of the
    /// batch, so answers that trigger new calls go out in one write.
    func send(_ bytes: [UInt8]) {
        switch state {
        case .connecting:
            waiting.append(contentsOf: bytes)
        case .open:
            guard let tcp else { return }
            tcp.write(bytes)
            if inReadCallback { needsFlush = true } else { tcp.flush() }
        case .closed:
            break
        }
    }

    func close(_ reason: CloseReason) {
        switch state {
        case .connecting: abandoned = true
        case .open: tcp?.close(reason)
        case .closed: break
        }
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        lastReadAt = loop.now
        decoder.feed(bytes)
        inReadCallback = true
        while connection.state == .open {
            do {
                let handled = try decoder.withNext { frame in
                    endpoint?.received(frame, on: self)
                    return true
                }
                if handled == nil { break }
            } catch {
                endpoint?.logger.warning(
                    "closing connection to \(endpoint?.address.description ?? "?"): \(error)")
                connection.close(.protocolViolation(error.description))
                break
            }
        }
        inReadCallback = false
        if needsFlush {
            needsFlush = false
            connection.flush()
        }
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        state = .closed
        tcp = nil
        endpoint?.connectionClosed(self, reason: reason)
    }
}
