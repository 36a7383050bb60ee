import Dispatch
import Logging
import MotanLoop
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The answer slot of one request. Call `respond` exactly once, from any thread; later calls are
/// ignored, and so is a response for a connection that has closed meanwhile.
public final class LoopHTTPResponder: @unchecked Sendable {
    public let loop: UVEventLoop
    private let connection: HTTPServerConnection
    private let answered = Atomic<Bool>(false)

    init(connection: HTTPServerConnection) {
        self.connection = connection
        loop = connection.connection.loop
    }

    public func respond(_ response: LoopHTTPResponse) {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if loop.inEventLoop {
            connection.deliver(response, from: self)
        } else {
            let connection = self.connection
            loop.execute { connection.deliver(response, from: self) }
        }
    }

    /// Closes the connection instead of answering, as a server that vanishes would.
    public func abandon() {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let connection = self.connection
        if loop.inEventLoop {
            connection.connection.close(.local)
        } else {
            loop.execute { connection.connection.close(.local) }
        }
    }

    /// False once the client has gone; a long-running handler may stop waiting then. Loop thread only.
    public var isConnectionOpen: Bool {
        loop.preconditionInEventLoop()
        return connection.connection.state == .open
    }

    /// The client's address, while known.
    public var remoteAddress: TCPAddress? {
        loop.preconditionInEventLoop()
        return connection.connection.remoteAddress
    }
}

/// An HTTP/1.1 server on every loop of a group. Handlers run on the loop that accepted the
/// connection; requests of one connection are answered in order, one at a time (pipelined ones
/// wait in the parser's buffer, which stops growing once it holds more than `pipelineBufferBytes`).
public final class LoopHTTPServer: Sendable {
    public struct Configuration: Sendable {
        /// Loopback unless told otherwise: an admin or test endpoint is not for the network.
        public var host: String
        public var port: Int
        public var limits: LoopHTTPLimits
        /// A connection without a request in progress is closed after this long.
        public var idleTimeout: Duration
        /// After a `Connection: close` answer, how long to wait for the client to close first.
        public var lingerTimeout: Duration
        public var pipelineBufferBytes: Int
        public var backlog: Int32

        public init(
            host: String = "127.0.0.1", port: Int = 0, limits: LoopHTTPLimits = LoopHTTPLimits(),
            idleTimeout: Duration = .seconds(75), lingerTimeout: Duration = .seconds(2),
            pipelineBufferBytes: Int = 64 * 1024, backlog: Int32 = 256
        ) {
            self.host = host
            self.port = port
            self.limits = limits
            self.idleTimeout = idleTimeout
            self.lingerTimeout = lingerTimeout
            self.pipelineBufferBytes = pipelineBufferBytes
            self.backlog = backlog
        }
    }

    /// Runs on the loop; answers through the responder, now or later.
    public typealias Handler = @Sendable (LoopHTTPRequest, LoopHTTPResponder) -> Void

    private let tcpServer: TCPServer
    private let core: ServerCore

    private init(tcpServer: TCPServer, core: ServerCore) {
        self.tcpServer = tcpServer
        self.core = core
    }

    public var address: TCPAddress { tcpServer.address }
    public var port: Int { tcpServer.port }

    /// Listens on every loop of `group`; `handler` answers through the responder, at once or later.
    /// Blocks until listening; never call on a loop thread.
    public static func start(
        _ configuration: Configuration = Configuration(), on group: UVEventLoopGroup,
        responder handler: @escaping Handler
    ) throws(LoopError) -> LoopHTTPServer {
        let core = ServerCore(configuration: configuration, group: group, handler: handler)
        let tcpServer = try TCPServer.bind(
            host: configuration.host, port: configuration.port, on: group, backlog: configuration.backlog
        ) { connection in
            core.accept(connection)
        }
        return LoopHTTPServer(tcpServer: tcpServer, core: core)
    }

    /// A handler that answers at once, on the loop: it must not block.
    public static func start(
        _ configuration: Configuration = Configuration(), on group: UVEventLoopGroup,
        handler: @escaping @Sendable (LoopHTTPRequest) -> LoopHTTPResponse
    ) throws(LoopError) -> LoopHTTPServer {
        try start(configuration, on: group) { request, responder in responder.respond(handler(request)) }
    }

    /// A handler that runs in Swift concurrency, for work that may wait.
    public static func start(
        _ configuration: Configuration = Configuration(), on group: UVEventLoopGroup,
        asyncHandler: @escaping @Sendable (LoopHTTPRequest) async -> LoopHTTPResponse
    ) throws(LoopError) -> LoopHTTPServer {
        try start(configuration, on: group) { request, responder in
            Task { responder.respond(await asyncHandler(request)) }
        }
    }

    /// Stops accepting and closes every connection, answered or not. Blocks until done; never call
    /// on a loop thread.
    public func close() {
        tcpServer.close()
        let closed = DispatchSemaphore(value: 0)
        // A loop that refuses work has shut down, and its connections with it.
        let waiting = core.group.loops.filter { loop in
            loop.execute { self.core.closeConnections(on: loop) { closed.signal() } }
        }
        for _ in waiting { closed.wait() }
    }

    /// `close()` without blocking the caller's thread.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DetachedThread.detach { [self] in
                close()
                continuation.resume()
            }
        }
    }

    /// Open connections on all loops (diagnostics, tests). Never call on a loop thread.
    public var connectionCount: Int {
        core.group.loops.reduce(0) { sum, loop in sum + (loop.tryRunSync { self.core.connections(on: loop) } ?? 0) }
    }

    /// Connections accepted since start.
    public var acceptedCount: Int { core.accepted.load(ordering: .relaxed) }
}

/// A plain thread for blocking work that must stay off both the loops and the cooperative pool.
enum DetachedThread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }
}

/// What every connection of one server shares. The connection sets are per loop and only touched there.
final class ServerCore: @unchecked Sendable {
    let configuration: LoopHTTPServer.Configuration
    let group: UVEventLoopGroup
    let handler: LoopHTTPServer.Handler
    let accepted = Atomic<Int>(0)
    private let perLoop: [ObjectIdentifier: LoopConnections]

    final class LoopConnections {
        var open: [ObjectIdentifier: HTTPServerConnection] = [:]
        var closed = false
        var whenEmpty: [() -> Void] = []
    }

    init(
        configuration: LoopHTTPServer.Configuration, group: UVEventLoopGroup, handler: @escaping LoopHTTPServer.Handler
    ) {
        self.configuration = configuration
        self.group = group
        self.handler = handler
        var perLoop: [ObjectIdentifier: LoopConnections] = [:]
        for loop in group.loops { perLoop[ObjectIdentifier(loop)] = LoopConnections() }
        self.perLoop = perLoop
    }

    func accept(_ connection: TCPConnection) -> TCPConnectionDelegate? {
        let set = perLoop[ObjectIdentifier(connection.loop)]!
        guard !set.closed else { return nil }
        accepted.add(1, ordering: .relaxed)
        let delegate = HTTPServerConnection(connection: connection, core: self)
        set.open[ObjectIdentifier(delegate)] = delegate
        delegate.armIdleTimer()
        return delegate
    }

    func closed(_ delegate: HTTPServerConnection) {
        guard let set = perLoop[ObjectIdentifier(delegate.connection.loop)] else { return }
        set.open[ObjectIdentifier(delegate)] = nil
        if set.open.isEmpty && !set.whenEmpty.isEmpty {
            let done = set.whenEmpty
            set.whenEmpty.removeAll()
            for callback in done { callback() }
        }
    }

    /// Closes the loop's connections; `done` runs once every one of them has finished closing.
    func closeConnections(on loop: UVEventLoop, done: @escaping () -> Void) {
        let set = perLoop[ObjectIdentifier(loop)]!
        set.closed = true
        guard !set.open.isEmpty else { return done() }
        set.whenEmpty.append(done)
        for connection in Array(set.open.values) { connection.connection.close(.local) }
    }

    func connections(on loop: UVEventLoop) -> Int { perLoop[ObjectIdentifier(loop)]!.open.count }
}

/// One server-side connection: parses requests, hands each to the handler, writes answers in order.
/// Loop-confined; Sendable only so a responder can hop back to its loop.
final class HTTPServerConnection: TCPConnectionDelegate, @unchecked Sendable {
    let connection: TCPConnection
    private let core: ServerCore
    private var parser: LoopHTTPRequestParser
    private var current: LoopHTTPResponder?
    private var currentRequest: (keepAlive: Bool, isHead: Bool, minorVersion: Int)?
    private var processing = false
    private var readingPaused = false
    /// A final answer went out; the rest of what arrives is drained and dropped.
    private var finishing = false
    private var idleTimer: LoopTimer?
    private var lingerTimer: LoopTimer?

    init(connection: TCPConnection, core: ServerCore) {
        self.connection = connection
        self.core = core
        parser = LoopHTTPRequestParser(limits: core.configuration.limits)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        guard !finishing else { return }
        idleTimer?.cancel()
        idleTimer = nil
        parser.append(bytes)
        process()
    }

    /// The client is gone (or half-closed, which HTTP clients do not do while waiting for an
    /// answer): like Go's server, treat it as gone, so a long poll does not hold the connection.
    func connectionDidReadEOF(_ connection: TCPConnection) {
        connection.close(.remoteClosed)
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        idleTimer?.cancel()
        idleTimer = nil
        lingerTimer?.cancel()
        lingerTimer = nil
        current = nil
        core.closed(self)
    }

    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while current == nil && !finishing && connection.state == .open {
            let request: LoopHTTPRequest
            do {
                guard let next = try parser.next() else { break }
                request = next
            } catch {
                fail(error)
                return
            }
            let responder = LoopHTTPResponder(connection: self)
            current = responder
            currentRequest = (request.keepAlive, request.method == "HEAD", request.minorVersion)
            core.handler(request, responder)
        }
        if current != nil && !readingPaused && parser.bufferedBytes > core.configuration.pipelineBufferBytes {
            readingPaused = true
            connection.stopReading()
        }
    }

    func deliver(_ response: LoopHTTPResponse, from responder: LoopHTTPResponder) {
        guard current === responder, let request = currentRequest, connection.state == .open else { return }
        current = nil
        currentRequest = nil
        var response = response
        let keepAlive = request.keepAlive && response.keepAlive
        if !keepAlive {
            response.headers.set("Connection", "close")
        } else if request.minorVersion == 0 {
            response.headers.set("Connection", "keep-alive")
        }
        response.minorVersion = 1
        connection.write(LoopHTTPSerializer.serialize(response, bodyAllowed: !request.isHead))
        connection.flush()
        if !keepAlive {
            finish()
            return
        }
        if readingPaused {
            readingPaused = false
            connection.startReading()
        }
        process()
        if current == nil && parser.isIdle { armIdleTimer() }
    }

    /// Answers a request that cannot be parsed, then closes; other connections are not affected.
    private func fail(_ error: LoopHTTPParseError) {
        connection.loop.logger.debug("HTTP request refused: \(error)")
        var response = LoopHTTPResponse(status: error.status, text: "\(error)\n")
        response.headers.set("Connection", "close")
        connection.write(LoopHTTPSerializer.serialize(response))
        connection.flush()
        finish()
    }

    /// Sends what is queued, shuts down our side, and waits (bounded) for the client to close, so
    /// unread bytes from it do not turn our close into a reset that destroys the answer in flight.
    private func finish() {
        finishing = true
        if readingPaused {
            readingPaused = false
            connection.startReading()
        }
        connection.shutdownWrite()
        lingerTimer = connection.loop.scheduleTimer(after: core.configuration.lingerTimeout) { [weak self] in
            self?.lingerTimer = nil
            self?.connection.close(.local)
        }
    }

    func armIdleTimer() {
        idleTimer?.cancel()
        idleTimer = connection.loop.scheduleTimer(after: core.configuration.idleTimeout) { [weak self] in
            guard let self else { return }
            self.idleTimer = nil
            if self.current == nil { self.connection.close(.local) }
        }
    }
}
