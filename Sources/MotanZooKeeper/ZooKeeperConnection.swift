import MotanLoop

/// One TCP connection to one ZooKeeper server, from connect to close: framing in both directions.
/// A reconnect makes a new object, so a late callback of an old socket can never touch the new one.
final class ZooKeeperConnection: TCPConnectionDelegate {
    let address: TCPAddress
    let loop: UVEventLoop
    /// Set to nil by the client when it abandons this connection; callbacks then go nowhere.
    weak var client: ZooKeeperClient?
    private(set) var tcp: TCPConnection?
    private var abandoned = false
    private var inbound: [UInt8] = []
    private var inboundStart = 0
    private var inReadCallback = false
    private var needsFlush = false
    private let maxPacketSize: Int
    /// Loop times of the last byte received and sent: pings and the dead-connection verdict use them.
    private(set) var lastReceivedAt: UInt64
    private(set) var lastSentAt: UInt64
    var handshakeDone = false

    init(client: ZooKeeperClient, address: TCPAddress, maxPacketSize: Int) {
        self.client = client
        self.address = address
        self.loop = client.loop
        self.maxPacketSize = maxPacketSize
        lastReceivedAt = client.loop.now
        lastSentAt = client.loop.now
    }

    func start(timeout: Duration) {
        TCPConnection.connect(to: address, on: loop, timeout: timeout, delegate: self) { [self] result in
            switch result {
            case .success(let tcp):
                if abandoned {
                    tcp.close(.local)
                    return
                }
                self.tcp = tcp
                lastReceivedAt = loop.now
                client?.connectionOpened(self)
            case .failure(let error):
                if !abandoned {
                    client?.connectionFailed(self, reason: error.description, loopShutDown: error == .loopShutDown)
                }
            }
        }
    }

    /// Queues one framed packet; inside a read callback the flush waits for the end of the batch.
    func send(_ framed: [UInt8]) {
        guard let tcp, tcp.state == .open else { return }
        tcp.write(framed)
        lastSentAt = loop.now
        if inReadCallback { needsFlush = true } else { tcp.flush() }
    }

    /// Stops reporting to the client and closes the socket.
    func abandon() {
        abandoned = true
        client = nil
        tcp?.close(.local)
    }

    func drop(_ reason: CloseReason) { tcp?.close(reason) }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        lastReceivedAt = loop.now
        inbound.append(contentsOf: bytes)
        inReadCallback = true
        defer {
            inReadCallback = false
            if needsFlush {
                needsFlush = false
                tcp?.flush()
            }
        }
        while inbound.count - inboundStart >= 4 {
            var length = 0
            for i in 0..<4 { length = length << 8 | Int(inbound[inboundStart + i]) }
            guard length <= maxPacketSize else {
                connection.close(.protocolViolation("packet of \(length) bytes exceeds \(maxPacketSize)"))
                return
            }
            guard inbound.count - inboundStart >= 4 + length else { break }
            let packet = Array(inbound[(inboundStart + 4)..<(inboundStart + 4 + length)])
            inboundStart += 4 + length
            guard let client, !abandoned else { return }
            client.received(packet, on: self)
            if abandoned || connection.state != .open { return }
        }
        if inboundStart == inbound.count {
            inbound.removeAll(keepingCapacity: true)
            inboundStart = 0
        } else if inboundStart > 64 * 1024 {
            inbound.removeFirst(inboundStart)
            inboundStart = 0
        }
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        tcp = nil
        if !abandoned {
            client?.connectionFailed(self, reason: reason.description, loopShutDown: reason == .loopShutdown)
        }
    }
}
