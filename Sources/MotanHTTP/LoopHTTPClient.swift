import Logging
import MotanLoop
import Synchronization

/// Why an HTTP exchange produced no response.
public enum LoopHTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalidAddress(String)
    case connectFailed(LoopError)
    /// The request's own deadline passed (connecting, waiting for a connection, or for the answer).
    case timedOut(milliseconds: UInt64)
    /// The connection ended before a whole response arrived.
    case connectionClosed(CloseReason)
    case malformedResponse(LoopHTTPParseError)
    case clientClosed
    /// The caller cancelled the request (or its task).
    case cancelled
    case loopShutDown

    public var description: String {
        switch self {
        case .invalidAddress(let address): "invalid address '\(address)'"
        case .connectFailed(let error): "\(error)"
        case .timedOut(let ms): "no response within \(ms) ms"
        case .connectionClosed(let reason): "connection ended before the response: \(reason)"
        case .malformedResponse(let error): "malformed response: \(error)"
        case .clientClosed: "HTTP client closed"
        case .cancelled: "request cancelled"
        case .loopShutDown: "event loop is shut down"
        }
    }
}

/// An HTTP/1.1 client on one loop. Connections are kept alive and reused per host; a request
/// that is waiting (a long poll, say) holds its own connection and nothing else, so any number of
/// them wait without a thread. Every request ends in exactly one outcome: a response or an error.
public final class LoopHTTPClient: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var connectTimeout: Duration
        /// Used when a request names no timeout of its own.
        public var defaultTimeout: Duration
        /// Beyond this many connections to one host, requests queue for a free one.
        public var maxConnectionsPerHost: Int
        public var maxIdleConnectionsPerHost: Int
        /// An unused kept-alive connection is closed after this long (servers drop idle ones too).
        public var idleTimeout: Duration
        public var limits: LoopHTTPLimits

        public init(
            connectTimeout: Duration = .seconds(5), defaultTimeout: Duration = .seconds(30),
            maxConnectionsPerHost: Int = 16, maxIdleConnectionsPerHost: Int = 4,
            idleTimeout: Duration = .seconds(30), limits: LoopHTTPLimits = LoopHTTPLimits(maxBodyBytes: 64 << 20)
        ) {
            self.connectTimeout = connectTimeout
            self.defaultTimeout = defaultTimeout
            self.maxConnectionsPerHost = max(1, maxConnectionsPerHost)
            self.maxIdleConnectionsPerHost = maxIdleConnectionsPerHost
            self.idleTimeout = idleTimeout
            self.limits = limits
        }
    }

    public typealias Completion = (Result<LoopHTTPResponse, LoopHTTPError>) -> Void

    public let loop: UVEventLoop
    public let configuration: Configuration
    private var pools: [TCPAddress: HostPool] = [:]
    private var isClosed = false
    /// Connections opened since the client was made (loop thread), to observe reuse.
    public private(set) var connectionsOpened = 0

    public init(loop: UVEventLoop, configuration: Configuration = Configuration()) {
        self.loop = loop
        self.configuration = configuration
    }

    /// Sends `request` to `address`; `completion` runs once, on the loop. Loop thread only.
    ///
    /// An idempotent request sent on a kept-alive connection that the server closes before any
    /// answer is sent once more on a new connection (the server most likely closed it as idle just
    /// as the request went out), unless `retryOnStaleConnection` is false: a long poll the server
    /// dropped should be reported, not repeated.
    @discardableResult
    public func execute(
        _ request: LoopHTTPRequest, to address: TCPAddress, timeout: Duration? = nil,
        retryOnStaleConnection: Bool = true, completion: @escaping Completion
    ) -> LoopHTTPRequestHandle {
        loop.preconditionInEventLoop()
        let exchange = Exchange(request: request, address: address, completion: completion)
        exchange.retried = !retryOnStaleConnection
        let handle = LoopHTTPRequestHandle(client: self, exchange: exchange)
        guard !isClosed else {
            exchange.finish(.failure(.clientClosed))
            return handle
        }
        let limit = timeout ?? configuration.defaultTimeout
        let ms = limit.roundedUpMilliseconds
        exchange.timer = loop.scheduleTimer(after: limit) { [weak self] in
            exchange.timer = nil
            self?.abandon(exchange, with: .timedOut(milliseconds: ms))
        }
        dispatch(exchange)
        return handle
    }

    /// Sends `request` from any thread and waits for its outcome without blocking one. Cancelling
    /// the task cancels the request.
    public func execute(
        _ request: LoopHTTPRequest, to address: TCPAddress, timeout: Duration? = nil,
        retryOnStaleConnection: Bool = true
    ) async throws(LoopHTTPError) -> LoopHTTPResponse {
        let pending = Mutex<(handle: LoopHTTPRequestHandle?, cancelled: Bool)>((nil, false))
        let result: Result<LoopHTTPResponse, LoopHTTPError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let accepted = loop.execute {
                    let handle = self.execute(
                        request, to: address, timeout: timeout, retryOnStaleConnection: retryOnStaleConnection
                    ) {
                        continuation.resume(returning: $0)
                    }
                    let cancelled = pending.withLock { state in
                        state.handle = handle
                        return state.cancelled
                    }
                    if cancelled { self.abandon(handle.exchange, with: .cancelled) }
                }
                if !accepted { continuation.resume(returning: .failure(.loopShutDown)) }
            }
        } onCancel: {
            let handle = pending.withLock { state in
                state.cancelled = true
                return state.handle
            }
            handle?.cancel()
        }
        return try result.get()
    }

    /// Fails every pending request with `clientClosed` and closes every connection. Loop thread only.
    public func close() {
        loop.preconditionInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        let pools = self.pools
        for pool in pools.values {
            let waiting = pool.waiting
            pool.waiting.removeAll()
            for exchange in waiting { exchange.finish(.failure(.clientClosed)) }
            for connection in pool.connections.values { connection.abort(.clientClosed) }
        }
    }

    /// `close()` from any thread.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = loop.execute {
                self.close()
                continuation.resume()
            }
            if !accepted { continuation.resume() }
        }
    }

    /// Open connections to every host (loop thread).
    public var openConnections: Int {
        loop.preconditionInEventLoop()
        return pools.values.reduce(0) { $0 + $1.connections.count }
    }

    // MARK: internals (loop thread)

    final class HostPool {
        var connections: [ObjectIdentifier: HTTPClientConnection] = [:]
        var idle: [HTTPClientConnection] = []
        var waiting: [Exchange] = []
    }

    private func pool(_ address: TCPAddress) -> HostPool {
        if let pool = pools[address] { return pool }
        let pool = HostPool()
        pools[address] = pool
        return pool
    }

    func dispatch(_ exchange: Exchange) {
        guard !exchange.isDone else { return }
        guard !isClosed else {
            exchange.finish(.failure(.clientClosed))
            return
        }
        let pool = pool(exchange.address)
        if let connection = pool.idle.popLast() {
            connection.start(exchange)
        } else if pool.connections.count < configuration.maxConnectionsPerHost {
            connectionsOpened += 1
            let connection = HTTPClientConnection(client: self, address: exchange.address)
            pool.connections[ObjectIdentifier(connection)] = connection
            connection.connect(for: exchange)
        } else {
            pool.waiting.append(exchange)
        }
    }

    /// Ends `exchange` with `error` unless it has ended: timeouts and cancellation.
    func abandon(_ exchange: Exchange, with error: LoopHTTPError) {
        guard !exchange.isDone else { return }
        if let connection = exchange.connection {
            exchange.finish(.failure(error))
            // The answer may still come; the connection cannot be reused for anything else.
            connection.abort(nil)
        } else {
            pools[exchange.address]?.waiting.removeAll { $0 === exchange }
            exchange.finish(.failure(error))
        }
    }

    /// A connection finished an exchange and may serve the next one.
    func connectionIsFree(_ connection: HTTPClientConnection) {
        let pool = pool(connection.address)
        while let next = pool.waiting.first {
            pool.waiting.removeFirst()
            if !next.isDone {
                connection.start(next)
                return
            }
        }
        if isClosed || pool.idle.count >= configuration.maxIdleConnectionsPerHost {
            connection.abort(nil)
            return
        }
        pool.idle.append(connection)
        connection.becomeIdle(timeout: configuration.idleTimeout)
    }

    /// A connection is gone; requests that were queued for a free one may now open their own.
    func connectionEnded(_ connection: HTTPClientConnection) {
        guard let pool = pools[connection.address] else { return }
        pool.connections[ObjectIdentifier(connection)] = nil
        pool.idle.removeAll { $0 === connection }
        if let next = pool.waiting.first {
            pool.waiting.removeFirst()
            dispatch(next)
        }
        if pool.connections.isEmpty && pool.waiting.isEmpty { pools[connection.address] = nil }
    }
}

/// A request in progress, to cancel it: it then ends with `.cancelled`, unless it has already ended.
public final class LoopHTTPRequestHandle: @unchecked Sendable {
    private let client: LoopHTTPClient
    let exchange: Exchange

    init(client: LoopHTTPClient, exchange: Exchange) {
        self.client = client
        self.exchange = exchange
    }

    /// Callable from any thread.
    public func cancel() {
        if client.loop.inEventLoop {
            client.abandon(exchange, with: .cancelled)
        } else {
            client.loop.execute { [self] in client.abandon(exchange, with: .cancelled) }
        }
    }
}

/// One request from submission to its single outcome.
final class Exchange {
    let request: LoopHTTPRequest
    let address: TCPAddress
    private var completion: LoopHTTPClient.Completion?
    var timer: LoopTimer?
    var connection: HTTPClientConnection?
    var retried = false

    init(request: LoopHTTPRequest, address: TCPAddress, completion: @escaping LoopHTTPClient.Completion) {
        self.request = request
        self.address = address
        self.completion = completion
    }

    var isDone: Bool { completion == nil }

    /// Delivers the outcome once; later calls do nothing.
    func finish(_ result: Result<LoopHTTPResponse, LoopHTTPError>) {
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        connection = nil
        completion(result)
    }

    /// Safe to send again on another connection when the first one died before any answer:
    /// a kept-alive connection the server closed just as we reused it.
    var isIdempotent: Bool { ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains(request.method) }
}

/// One client-side connection: one exchange at a time, then back to the pool or closed.
final class HTTPClientConnection: TCPConnectionDelegate {
    /// Strong: the client lives while any of its connections does, and the pool lets go of a connection when it ends.
    let client: LoopHTTPClient
    let address: TCPAddress
    private var connection: TCPConnection?
    private var parser: LoopHTTPResponseParser
    private var exchange: Exchange?
    private var receivedAny = false
    private var served = 0
    private var idleTimer: LoopTimer?
    private var abortError: LoopHTTPError?
    private var ended = false

    init(client: LoopHTTPClient, address: TCPAddress) {
        self.client = client
        self.address = address
        parser = LoopHTTPResponseParser(limits: client.configuration.limits)
    }

    func connect(for exchange: Exchange) {
        self.exchange = exchange
        exchange.connection = self
        TCPConnection.connect(
            to: address, on: client.loop, timeout: client.configuration.connectTimeout, delegate: self
        ) { [self] result in
            switch result {
            case .success(let connection):
                self.connection = connection
                let exchange = self.exchange
                self.exchange = nil
                if let abortError {
                    connection.close(.local)
                    exchange?.finish(.failure(abortError))
                } else if let exchange, !exchange.isDone {
                    start(exchange)
                } else {
                    client.connectionIsFree(self)
                }
            case .failure(let error):
                // A connection that never opened reports no close: account for it here.
                ended = true
                let exchange = self.exchange
                self.exchange = nil
                exchange?.finish(.failure(abortError ?? .connectFailed(error)))
                client.connectionEnded(self)
            }
        }
    }

    func start(_ exchange: Exchange) {
        idleTimer?.cancel()
        idleTimer = nil
        guard let connection, connection.state == .open else {
            // Closed while idle, before its close callback ran: try another connection.
            client.dispatch(exchange)
            return
        }
        self.exchange = exchange
        exchange.connection = self
        receivedAny = false
        parser.nextResponseHasNoBody = exchange.request.method == "HEAD"
        connection.write(LoopHTTPSerializer.serialize(exchange.request, host: address.description))
        connection.flush()
    }

    func becomeIdle(timeout: Duration) {
        idleTimer?.cancel()
        idleTimer = client.loop.scheduleTimer(after: timeout) { [weak self] in
            self?.idleTimer = nil
            self?.connection?.close(.local)
        }
    }

    /// Closes the connection; a current exchange fails with `error` (nil: it already has its outcome).
    func abort(_ error: LoopHTTPError?) {
        abortError = error ?? .clientClosed
        if let exchange, let error {
            self.exchange = nil
            exchange.finish(.failure(error))
        }
        connection?.close(.local)
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        guard let exchange else {
            // Nobody asked: a server talking out of turn cannot be trusted with the next request.
            connection.close(.protocolViolation("unsolicited bytes on an idle HTTP connection"))
            return
        }
        receivedAny = true
        parser.append(bytes)
        do {
            while let response = try parser.next() {
                if (100..<200).contains(response.status) { continue }  // interim answers
                finish(exchange, with: response)
                return
            }
        } catch {
            self.exchange = nil
            exchange.finish(.failure(.malformedResponse(error)))
            connection.close(.protocolViolation("\(error)"))
        }
    }

    func connectionDidReadEOF(_ connection: TCPConnection) {
        if let exchange {
            do {
                if let response = try parser.finish() {
                    self.exchange = nil
                    connection.close(.remoteClosed)
                    exchange.finish(.success(response))
                    return
                }
            } catch {
                self.exchange = nil
                exchange.finish(.failure(.malformedResponse(error)))
            }
        }
        connection.close(.remoteClosed)
    }

    private func finish(_ exchange: Exchange, with response: LoopHTTPResponse) {
        self.exchange = nil
        served += 1
        let reusable = response.keepAlive && exchange.request.keepAlive && parser.isIdle
        // Back to the pool first, so a follow-up request made by the completion reuses this connection.
        if reusable {
            client.connectionIsFree(self)
        } else {
            connection?.close(.local)
        }
        exchange.finish(.success(response))
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        idleTimer?.cancel()
        idleTimer = nil
        guard !ended else { return }
        ended = true
        let exchange = self.exchange
        self.exchange = nil
        client.connectionEnded(self)
        guard let exchange, !exchange.isDone else { return }
        if let abortError {
            exchange.finish(.failure(abortError))
        } else if !receivedAny && served > 0 && !exchange.retried && exchange.isIdempotent {
            exchange.retried = true
            exchange.connection = nil
            client.dispatch(exchange)
        } else {
            exchange.finish(.failure(.connectionClosed(reason)))
        }
    }
}
