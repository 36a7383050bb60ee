import Logging
import MotanLoop
import Synchronization

/// A ZooKeeper client on one loop: jute over `TCPConnection`, session keeping with pings, failover
/// across the servers of a connection string, watches re-armed with SetWatches after a reconnect,
/// and a new session (with a `.connected(isNew: true)` event) after an expiry.
///
/// Methods without `completion:` are callable from any thread; the `completion:` forms and the
/// session listeners are loop-thread only. Watchers and completions run on the loop.
public final class ZooKeeperClient: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Asked of the server, which clamps it to its own bounds; the negotiated value is in `session`.
        public var sessionTimeout: Duration = .seconds(30)
        /// Reconnects wait a random time up to this (so a crowd of clients does not arrive at once).
        public var maxReconnectDelay: Duration = .milliseconds(300)
        /// Try the servers in random order, as the Java client does.
        public var shuffleServers = true
        /// How long `close()` waits for the closeSession reply.
        public var closeTimeout: Duration = .seconds(2)
        /// Resume this session instead of starting a new one.
        public var resumeSession: ZooKeeperSession?
        /// The largest packet accepted from a server (`jute.maxbuffer` plus headroom).
        public var maxPacketSize = 0xfffff + 4096
        public init() {}
    }

    public let loop: UVEventLoop
    public let servers: [TCPAddress]
    public let configuration: Configuration
    let logger: Logger

    // MARK: loop-thread state

    private enum Phase { case connecting, connected, waiting, closing, closed }
    private var phase = Phase.waiting
    private var connection: ZooKeeperConnection?
    private var serverIndex = 0
    private var sessionID: Int64 = 0
    private var password = [UInt8](repeating: 0, count: 16)
    private var timeoutMilliseconds: UInt64
    private var lastZxid: Int64 = 0
    private var nextXid: Int32 = 1
    private var outgoing: [Request] = []
    private var inflight: [Request] = []
    private var inflightHead = 0
    private var watches = WatchTable()
    private var attemptTimer: LoopTimer?
    private var pingTimer: LoopTimer?
    private var reconnectTimer: LoopTimer?
    private var closeTimer: LoopTimer?
    private var listeners: [UInt64: (ZooKeeperSessionEvent) -> Void] = [:]
    private var nextListenerID: UInt64 = 0
    private var closeWaiters: [() -> Void] = []
    private var connectWaiters: [UInt64: (Result<Void, ZooKeeperError>) -> Void] = [:]
    private var failedAttempts = 0

    private struct Published {
        var session: ZooKeeperSession?
        var server: String?
        var isConnected = false
        var isClosed = false
    }
    private let published = Mutex(Published())

    /// Connects to `connectString` (`host:port,host:port,...`); connecting starts at once.
    public init(
        connectString: String, loop: UVEventLoop, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "motan.zookeeper")
    ) throws(ZooKeeperError) {
        var servers = try Self.parse(connectString: connectString)
        if configuration.shuffleServers { servers.shuffle() }
        self.servers = servers
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        timeoutMilliseconds = max(1, configuration.sessionTimeout.roundedUpMilliseconds)
        if let session = configuration.resumeSession {
            sessionID = session.id
            password = session.password
        }
        let accepted = loop.execute { [self] in
            guard phase == .waiting else { return }
            connectNext()
        }
        if !accepted { throw .closed }
    }

    /// `host:port` entries separated by commas; the port defaults to 2181. No chroot suffix.
    public static func parse(connectString: String) throws(ZooKeeperError) -> [TCPAddress] {
        var out: [TCPAddress] = []
        for entry in connectString.split(separator: ",") {
            let text = entry.filter { !$0.isWhitespace }
            guard !text.isEmpty, !text.contains("/") else { throw .badArguments }
            let withPort = text.contains(":") && !text.hasSuffix("]") ? text : text + ":2181"
            guard let address = try? TCPAddress(parsing: withPort) else { throw .badArguments }
            out.append(address)
        }
        guard !out.isEmpty else { throw .badArguments }
        return out
    }

    // MARK: state visible from any thread

    /// The current session, nil before the first one and after an expiry until the next one.
    public var session: ZooKeeperSession? { published.withLock { $0.session } }
    /// The server of the current connection, nil while disconnected.
    public var connectedServer: String? { published.withLock { $0.server } }
    public var isConnected: Bool { published.withLock { $0.isConnected } }

    // MARK: session events

    /// Loop thread only. The listener hears every later session event, on the loop.
    @discardableResult
    public func addSessionListener(_ listener: @escaping (ZooKeeperSessionEvent) -> Void) -> UInt64 {
        loop.preconditionInEventLoop()
        nextListenerID += 1
        listeners[nextListenerID] = listener
        return nextListenerID
    }

    public func removeSessionListener(_ id: UInt64) {
        loop.preconditionInEventLoop()
        listeners[id] = nil
    }

    /// A stream of session events; it starts with `.connected` when the client is connected now,
    /// and finishes after `.closed`.
    public func sessionEvents() -> AsyncStream<ZooKeeperSessionEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ZooKeeperSessionEvent.self, bufferingPolicy: .bufferingNewest(64))
        let accepted = loop.execute { [self] in
            if phase == .closed {
                continuation.yield(.closed)
                continuation.finish()
                return
            }
            if phase == .connected, let connection {
                continuation.yield(
                    .connected(session: currentSession, server: connection.address.description, isNew: false))
            }
            let id = addSessionListener { event in
                continuation.yield(event)
                if event == .closed { continuation.finish() }
            }
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                _ = self.loop.execute { self.listeners[id] = nil }
            }
        }
        if !accepted {
            continuation.yield(.closed)
            continuation.finish()
        }
        return stream
    }

    /// Waits until the client is connected, at most `timeout`; `.connectionLoss` after that.
    public func waitUntilConnected(timeout: Duration = .seconds(10)) async throws(ZooKeeperError) {
        let result: Result<Void, ZooKeeperError> = await withCheckedContinuation { continuation in
            let accepted = loop.execute { [self] in
                switch phase {
                case .connected: return continuation.resume(returning: .success(()))
                case .closing, .closed: return continuation.resume(returning: .failure(.closed))
                default: break
                }
                nextListenerID += 1
                let id = nextListenerID
                let timer = loop.scheduleTimer(after: timeout) { [weak self] in
                    self?.connectWaiters.removeValue(forKey: id)?(.failure(.connectionLoss))
                }
                connectWaiters[id] = { result in
                    timer.cancel()
                    continuation.resume(returning: result)
                }
            }
            if !accepted { continuation.resume(returning: .failure(.closed)) }
        }
        try result.get()
    }

    private var currentSession: ZooKeeperSession {
        ZooKeeperSession(id: sessionID, password: password, timeout: .milliseconds(timeoutMilliseconds))
    }

    private func emit(_ event: ZooKeeperSessionEvent) {
        for listener in listeners.values { listener(event) }
    }

    // MARK: connecting

    private func connectNext() {
        guard phase != .closed else { return }
        if phase != .closing { phase = .connecting }
        let address = servers[serverIndex % servers.count]
        serverIndex = (serverIndex + 1) % servers.count
        let connection = ZooKeeperConnection(
            client: self, address: address, maxPacketSize: configuration.maxPacketSize)
        self.connection = connection
        // Java gives each server an equal share of the session timeout to answer. A handshake
        // normally takes milliseconds, so no attempt waits more than a third of the session: a
        // server that accepted while still starting (and never answers) is left in time to try
        // again before the session expires, even with a single server.
        let share = Duration.milliseconds(
            max(500, min(timeoutMilliseconds / UInt64(servers.count), timeoutMilliseconds / 3)))
        attemptTimer = loop.scheduleTimer(after: share) { [weak self, weak connection] in
            guard let self, let connection, connection === self.connection else { return }
            self.attemptTimer = nil
            self.connectionFailed(connection, reason: "no session within \(share)")
        }
        logger.debug("connecting", metadata: ["server": "\(address)", "session": "\(hex(sessionID))"])
        connection.start(timeout: share)
    }

    func connectionOpened(_ connection: ZooKeeperConnection) {
        guard connection === self.connection else { return connection.abandon() }
        var w = JuteWriter(capacity: 48)
        w.int(0)
        w.long(lastZxid)
        w.int(Int32(clamping: timeoutMilliseconds))
        w.long(sessionID)
        w.buffer(password)
        w.bool(false)
        connection.send(w.framed)
    }

    func connectionFailed(_ connection: ZooKeeperConnection, reason: String, loopShutDown: Bool = false) {
        guard connection === self.connection else { return }
        self.connection = nil
        connection.abandon()
        attemptTimer?.cancel()
        attemptTimer = nil
        pingTimer?.cancel()
        pingTimer = nil
        let wasConnected = phase == .connected
        // A loop that shuts down under an open client takes its timers along: end everything now
        // rather than leave requests waiting for a reconnect that can never come.
        let ending = phase == .closing || phase == .closed || loopShutDown
        failAll(ending ? .closed : .connectionLoss)
        published.withLock {
            $0.isConnected = false
            $0.server = nil
        }
        if ending { return finishClose() }
        failedAttempts = wasConnected ? 0 : failedAttempts + 1
        // During a long outage, say so now and then rather than on every attempt.
        logger.log(
            level: failedAttempts <= 1 || failedAttempts % 50 == 0 ? .info : .debug,
            wasConnected ? "connection lost" : "connect failed (attempt \(failedAttempts))",
            metadata: ["server": "\(connection.address)", "reason": "\(reason)"])
        if wasConnected { emit(.disconnected) }
        phase = .waiting
        let maxDelay = configuration.maxReconnectDelay.roundedUpMilliseconds
        let delay = maxDelay == 0 ? 0 : UInt64.random(in: 0...maxDelay)
        reconnectTimer = loop.scheduleTimer(after: .milliseconds(delay)) { [weak self] in
            guard let self else { return }
            self.reconnectTimer = nil
            if self.phase == .waiting { self.connectNext() }
        }
    }

    func received(_ packet: [UInt8], on connection: ZooKeeperConnection) {
        guard connection === self.connection else { return }
        do throws(ZooKeeperError) {
            if connection.handshakeDone {
                try receivedReply(packet, on: connection)
            } else {
                try receivedConnectResponse(packet, on: connection)
            }
        } catch {
            logger.warning("malformed packet", metadata: ["server": "\(connection.address)", "error": "\(error)"])
            connection.drop(.protocolViolation("malformed ZooKeeper packet: \(error)"))
        }
    }

    private func receivedConnectResponse(_ packet: [UInt8], on connection: ZooKeeperConnection) throws(ZooKeeperError) {
        var r = JuteReader(packet)
        _ = try r.int()
        let timeout = try r.int()
        let id = try r.long()
        let passwd = try r.buffer() ?? []
        attemptTimer?.cancel()
        attemptTimer = nil
        if timeout <= 0 {
            sessionExpired()
            // The server that said so is alive: start the new session there.
            serverIndex = (serverIndex + servers.count - 1) % servers.count
            self.connection = nil
            connection.abandon()
            if phase == .closing { return finishClose() }
            return connectNext()
        }
        let isNew = id != sessionID
        sessionID = id
        password = passwd
        timeoutMilliseconds = UInt64(timeout)
        connection.handshakeDone = true
        failedAttempts = 0
        let closing = phase == .closing
        if !closing { phase = .connected }
        let session = currentSession
        published.withLock {
            $0.session = session
            $0.server = connection.address.description
            $0.isConnected = true
        }
        logger.info(
            isNew ? "session started" : "session resumed",
            metadata: ["server": "\(connection.address)", "session": "\(hex(id))", "timeout": "\(timeout) ms"])
        startPinging(connection)
        if !isNew { sendSetWatches(on: connection) } else { dropWatches(state: .expired) }
        let queued = outgoing
        outgoing = []
        for request in queued { transmit(request, on: connection) }
        if closing { return }
        let waiters = connectWaiters
        connectWaiters = [:]
        for waiter in waiters.values { waiter(.success(())) }
        emit(.connected(session: session, server: connection.address.description, isNew: isNew))
    }

    private func sessionExpired() {
        let old = sessionID
        logger.warning("session expired", metadata: ["session": "\(hex(old))"])
        sessionID = 0
        password = [UInt8](repeating: 0, count: 16)
        timeoutMilliseconds = max(1, configuration.sessionTimeout.roundedUpMilliseconds)
        published.withLock { $0.session = nil }
        failAll(.sessionExpired)
        dropWatches(state: .expired)
        if phase != .closing { emit(.expired(sessionID: old)) }
    }

    private func dropWatches(state: ZooKeeperKeeperState) {
        for (path, watcher) in watches.takeAll() {
            watcher(ZooKeeperWatchEvent(type: .none, state: state, path: path))
        }
    }

    private func sendSetWatches(on connection: ZooKeeperConnection) {
        for packet in watches.setWatchesPackets(relativeZxid: lastZxid) { connection.send(packet) }
    }

    private func startPinging(_ connection: ZooKeeperConnection) {
        pingTimer?.cancel()
        let t = timeoutMilliseconds
        let tick = Duration.milliseconds(max(10, min(t / 10, 1000)))
        pingTimer = loop.scheduleRepeatingTimer(every: tick) { [weak self, weak connection] in
            guard let self, let connection, connection === self.connection else { return }
            let now = self.loop.now
            if now &- connection.lastReceivedAt >= t * 2 / 3 {
                connection.drop(.protocolViolation("nothing received for \(now &- connection.lastReceivedAt) ms"))
                return
            }
            if now &- connection.lastSentAt >= min(t / 3, 10_000) {
                var w = JuteWriter(capacity: 8)
                w.int(Xid.ping)
                w.int(OpCode.ping)
                connection.send(w.framed)
            }
        }
    }

    private func receivedReply(_ packet: [UInt8], on connection: ZooKeeperConnection) throws(ZooKeeperError) {
        var r = JuteReader(packet)
        let xid = try r.int()
        let zxid = try r.long()
        let err = try r.int()
        switch xid {
        case Xid.notification:
            let type = try r.int()
            let state = try r.int()
            let path = try r.string() ?? ""
            deliver(
                ZooKeeperWatchEvent(
                    type: ZooKeeperEventType(rawValue: type) ?? .none,
                    state: ZooKeeperKeeperState(rawValue: state) ?? .unknown, path: path))
        case Xid.ping, Xid.auth:
            break
        case Xid.setWatches:
            if err != 0 {
                logger.warning("SetWatches failed", metadata: ["error": "\(ZooKeeperError(code: err))"])
            }
        default:
            guard inflightHead < inflight.count, inflight[inflightHead].xid == xid else {
                throw .marshallingError
            }
            let request = inflight[inflightHead]
            inflightHead += 1
            if inflightHead == inflight.count {
                inflight.removeAll(keepingCapacity: true)
                inflightHead = 0
            }
            if zxid > 0 { lastZxid = zxid }
            let error: ZooKeeperError? = err == 0 ? nil : ZooKeeperError(code: err)
            if let watch = request.watch {
                watches.add(watch.kind, path: watch.path, watcher: watch.watcher, error: error)
            }
            request.completion(error.map { .failure($0) } ?? .success(r))
        }
    }

    private func deliver(_ event: ZooKeeperWatchEvent) {
        for watcher in watches.take(for: event) { watcher(event) }
    }

    private func failAll(_ error: ZooKeeperError) {
        let pending = Array(inflight[inflightHead...]) + outgoing
        inflight = []
        inflightHead = 0
        outgoing = []
        for request in pending { request.completion(.failure(error)) }
    }

    // MARK: requests

    struct WatchRegistration {
        let kind: WatchTable.Kind
        let path: String
        let watcher: ZooKeeperWatcher
    }

    final class Request {
        let op: Int32
        let body: [UInt8]
        let watch: WatchRegistration?
        let completion: (Result<JuteReader, ZooKeeperError>) -> Void
        var xid: Int32 = 0
        init(
            op: Int32, body: [UInt8], watch: WatchRegistration?,
            completion: @escaping (Result<JuteReader, ZooKeeperError>) -> Void
        ) {
            self.op = op
            self.body = body
            self.watch = watch
            self.completion = completion
        }
    }

    /// Loop thread only. Sends at once when connected, else queues for the connection being made.
    func submit(
        op: Int32, body: [UInt8], watch: WatchRegistration? = nil,
        completion: @escaping (Result<JuteReader, ZooKeeperError>) -> Void
    ) {
        loop.preconditionInEventLoop()
        let request = Request(op: op, body: body, watch: watch, completion: completion)
        switch phase {
        case .closed, .closing:
            completion(.failure(.closed))
        case .connected:
            guard let connection, connection.handshakeDone else { return outgoing.append(request) }
            transmit(request, on: connection)
        case .connecting, .waiting:
            outgoing.append(request)
        }
    }

    private func transmit(_ request: Request, on connection: ZooKeeperConnection) {
        request.xid = nextXid
        nextXid = nextXid == Int32.max ? 1 : nextXid + 1
        var w = JuteWriter(capacity: request.body.count + 8)
        w.int(request.xid)
        w.int(request.op)
        w.raw(request.body)
        inflight.append(request)
        connection.send(w.framed)
    }

    /// Runs `submit` from any thread and waits for the outcome.
    func perform(op: Int32, body: [UInt8], watch: WatchRegistration? = nil) async throws(ZooKeeperError) -> JuteReader {
        let result: Result<JuteReader, ZooKeeperError> = await withCheckedContinuation { continuation in
            let accepted = loop.execute { [self] in
                submit(op: op, body: body, watch: watch) { continuation.resume(returning: $0) }
            }
            if !accepted { continuation.resume(returning: .failure(.closed)) }
        }
        return try result.get()
    }

    // MARK: closing

    /// Ends the session (closeSession, so the server deletes its ephemeral nodes at once) and
    /// closes the connection. Outstanding requests fail with `.closed`. Safe to call more than once.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = loop.execute { [self] in close { continuation.resume() } }
            if !accepted { continuation.resume() }
        }
    }

    /// Loop-thread form of `close()`.
    public func close(completion: @escaping () -> Void) {
        loop.preconditionInEventLoop()
        if phase == .closed { return completion() }
        closeWaiters.append(completion)
        if phase == .closing { return }
        let previous = phase
        phase = .closing
        let waiters = connectWaiters
        connectWaiters = [:]
        for waiter in waiters.values { waiter(.failure(.closed)) }
        reconnectTimer?.cancel()
        reconnectTimer = nil
        published.withLock { $0.isClosed = true }
        closeTimer = loop.scheduleTimer(after: configuration.closeTimeout) { [weak self] in
            self?.closeTimer = nil
            self?.finishClose()
        }
        let closeRequest = Request(op: OpCode.closeSession, body: [], watch: nil) { [weak self] _ in
            self?.finishClose()
        }
        switch previous {
        case .connected:
            guard let connection, connection.handshakeDone else { return finishClose() }
            transmit(closeRequest, on: connection)
        case .connecting where sessionID != 0:
            // A resumed session: close it as soon as the handshake is through.
            failAll(.closed)
            outgoing.append(closeRequest)
        default:
            finishClose()
        }
    }

    private func finishClose() {
        guard phase != .closed else { return }
        phase = .closed
        closeTimer?.cancel()
        closeTimer = nil
        attemptTimer?.cancel()
        attemptTimer = nil
        pingTimer?.cancel()
        pingTimer = nil
        reconnectTimer?.cancel()
        reconnectTimer = nil
        connection?.abandon()
        connection = nil
        failAll(.closed)
        let waiters = connectWaiters
        connectWaiters = [:]
        for waiter in waiters.values { waiter(.failure(.closed)) }
        published.withLock {
            $0.isConnected = false
            $0.server = nil
            $0.session = nil
            $0.isClosed = true
        }
        watches = WatchTable()
        logger.info("closed", metadata: ["session": "\(hex(sessionID))"])
        emit(.closed)
        listeners = [:]
        let closed = closeWaiters
        closeWaiters = []
        for waiter in closed { waiter() }
    }
}

enum Xid {
    static let notification: Int32 = -1
    static let ping: Int32 = -2
    static let auth: Int32 = -4
    static let setWatches: Int32 = -8
}

enum OpCode {
    static let create: Int32 = 1
    static let delete: Int32 = 2
    static let exists: Int32 = 3
    static let getData: Int32 = 4
    static let setData: Int32 = 5
    static let getChildren2: Int32 = 12
    static let ping: Int32 = 11
    static let setWatches: Int32 = 101
    static let closeSession: Int32 = -11
}

func hex(_ id: Int64) -> String { "0x" + String(UInt64(bitPattern: id), radix: 16) }
