import Logging
import MotanCodec
import MotanLoop
import Synchronization

/// A client of one server address: a small pool of connections on one loop, a pending map
/// matched by request id, deadlines on the loop's timer wheel, and Motan's availability rules.
/// Every call ends with exactly one outcome: a value, a typed error, or a timeout.
///
/// "Available" means one thing here: the consecutive weighted failure count is below the
/// threshold (+1 failed call or timeout, +2 connect failure, +3 no connection; a business
/// exception or any success resets it). An unavailable endpoint fails calls at once, and the
/// loop's heartbeat manager probes it until a heartbeat is answered.
public final class ClientEndpoint: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Connections per endpoint (Java's `minClientConnection`).
        public var connections: Int
        /// Used when a call gives none. Motan-go's 1 s (Java uses 200 ms).
        public var requestTimeout: Duration
        public var connectTimeout: Duration
        /// Weighted failures that make the endpoint unavailable; ≤ 0 disables fusing.
        public var failureThreshold: Int
        /// A slot whose connect failed waits this long before a call may try it again.
        public var reconnectDelay: Duration
        /// Calls waiting for responses beyond this are refused locally (not counted as failures).
        public var maxPendingCalls: Int
        public var maxContentLength: Int
        /// How long a heartbeat may take (motan-go: 1 s).
        public var heartbeatTimeout: Duration
        /// Off (nil) by default, like the originals: when set, a connection that has read nothing
        /// for this long gets a heartbeat, and an unanswered one makes the endpoint unavailable.
        public var keepaliveIdleInterval: Duration?
        public var heartbeatFactory: any HeartbeatFactory
        public var logger: Logger
        /// Called on the endpoint's loop for every event, in order.
        public var onEvent: (@Sendable (EndpointEvent) -> Void)?

        public init(
            connections: Int = 2,
            requestTimeout: Duration = .seconds(1),
            connectTimeout: Duration = .seconds(1),
            failureThreshold: Int = 10,
            reconnectDelay: Duration = .milliseconds(100),
            maxPendingCalls: Int = 50_000,
            maxContentLength: Int = FrameDecoder.defaultMaxContentLength,
            heartbeatTimeout: Duration = .seconds(1),
            keepaliveIdleInterval: Duration? = nil,
            heartbeatFactory: any HeartbeatFactory = Motan2HeartbeatFactory(),
            logger: Logger = Logger(label: "motan.transport.client"),
            onEvent: (@Sendable (EndpointEvent) -> Void)? = nil
        ) {
            self.connections = connections
            self.requestTimeout = requestTimeout
            self.connectTimeout = connectTimeout
            self.failureThreshold = failureThreshold
            self.reconnectDelay = reconnectDelay
            self.maxPendingCalls = maxPendingCalls
            self.maxContentLength = maxContentLength
            self.heartbeatTimeout = heartbeatTimeout
            self.keepaliveIdleInterval = keepaliveIdleInterval
            self.heartbeatFactory = heartbeatFactory
            self.logger = logger
            self.onEvent = onEvent
        }
    }

    public let address: TCPAddress
    public let loop: UVEventLoop
    public let configuration: Configuration
    public let heartbeatManager: HeartbeatManager
    /// Every event, for consumers that prefer a stream (keeps the newest 1024 unread ones).
    public let events: AsyncStream<EndpointEvent>

    let logger: Logger
    private let eventContinuation: AsyncStream<EndpointEvent>.Continuation
    private let wheel: TimerWheel
    private let metrics: EndpointMetrics
    private let availableFlag = Atomic<Bool>(true)

    // Loop-thread state.
    private let pool: ConnectionPool
    private var pending = PendingCalls()
    private var availability: AvailabilityTracker
    private var unavailableReason = ""
    private var nextRequestID: UInt64 = 0
    private var nextConnectionID: UInt64 = 0
    private var isClosed = false
    private var scratch: [UInt8] = []

    /// Creates the endpoint; nothing connects until the first call. Any thread.
    /// `heartbeatManager` defaults to the loop's own (one per loop).
    public init(
        address: TCPAddress, loop: UVEventLoop, configuration: Configuration = Configuration(),
        heartbeatManager: HeartbeatManager? = nil
    ) {
        self.address = address
        self.loop = loop
        self.configuration = configuration
        let services = LoopServices.of(loop)
        self.heartbeatManager = heartbeatManager ?? services.heartbeats
        precondition(self.heartbeatManager.loop === loop, "the heartbeat manager must run on the endpoint's loop")
        wheel = services.wheel
        logger = configuration.logger
        metrics = EndpointMetrics(endpoint: address.description)
        pool = ConnectionPool(size: configuration.connections)
        availability = AvailabilityTracker(threshold: configuration.failureThreshold, now: 0)
        (events, eventContinuation) = AsyncStream.makeStream(
            of: EndpointEvent.self, bufferingPolicy: .bufferingNewest(1024))
        metrics.available.record(1)
        let manager = self.heartbeatManager
        let watchIdle = configuration.keepaliveIdleInterval != nil
        loop.execute { [self] in
            availability.startClock(now: loop.now)
            if watchIdle && !isClosed { manager.watchIdle(self) }
        }
    }

    /// Requests waiting for an answer. Loop thread only.
    var pendingCount: Int { pending.count }

    /// Whether calls are let through; readable from any thread.
    public var isAvailable: Bool { availableFlag.load(ordering: .acquiring) }

    // MARK: calls

    /// Calls `service.method` with `arguments`; `completion` runs exactly once, on the loop.
    /// Loop thread only: this is the form for code that already runs on the loop.
    public func call(
        service: String, method: String, group: String? = nil, arguments: [SimpleValue] = [],
        timeout: Duration? = nil, completion: @escaping (Result<SimpleValue, TransportError>) -> Void
    ) {
        loop.preconditionInEventLoop()
        guard !isClosed else { return completion(.failure(.endpointClosed)) }
        guard availability.isAvailable else {
            return completion(.failure(.unavailable(endpoint: address.description)))
        }
        guard pending.count < configuration.maxPendingCalls else {
            // Caused on this side: it says nothing about the server, so it does not count.
            return completion(.failure(.tooManyPendingCalls(limit: configuration.maxPendingCalls)))
        }
        let id = makeRequestID()
        scratch.removeAll(keepingCapacity: true)
        FrameEncoder.encodeRequest(
            requestID: id, service: service, method: method, group: group, into: &scratch
        ) { SimpleSerialization.encode(arguments, into: &$0) }
        guard scratch.count - 21 <= configuration.maxContentLength else {
            return completion(
                .failure(
                    .requestTooLarge(bytes: scratch.count, limit: configuration.maxContentLength)))
        }
        guard let connection = pool.connectionForCall(now: loop.now, connect: makeConnection) else {
            record(.noConnection)
            return completion(.failure(.noConnection(endpoint: address.description)))
        }
        let timeoutMilliseconds = (timeout ?? configuration.requestTimeout).roundedUpMilliseconds
        pending.insert(
            PendingCall(
                kind: .call(completion), connectionID: connection.id,
                timeoutMilliseconds: timeoutMilliseconds), id: id)
        wheel.schedule(deadline: loop.now + timeoutMilliseconds, key: id, target: self)
        connection.send(scratch)
    }

    /// Calls `service.method` from any thread or task.
    public func call(
        service: String, method: String, group: String? = nil, arguments: [SimpleValue] = [],
        timeout: Duration? = nil
    ) async throws(TransportError) -> SimpleValue {
        let result: Result<SimpleValue, TransportError> = await withCheckedContinuation {
            continuation in
            let accepted = loop.execute { [self] in
                call(
                    service: service, method: method, group: group, arguments: arguments, timeout: timeout
                ) { continuation.resume(returning: $0) }
            }
            // The loop has shut down, which closed this endpoint's connections with it.
            if !accepted { continuation.resume(returning: .failure(.endpointClosed)) }
        }
        return try result.get()
    }

    /// Closes every connection, fails pending calls with `.endpointClosed` and stops probing at
    /// once. On the endpoint's loop it returns at once; elsewhere it blocks until done, so it must
    /// not be called on another loop's thread (async code uses `close() async`).
    public func close() {
        if loop.inEventLoop {
            closeOnLoop()
        } else {
            UVEventLoop.preconditionNotOnLoopThread("ClientEndpoint.close() off the endpoint's loop")
            // nil: the loop has shut down, and its shutdown closed the connections and failed the calls.
            _ = loop.tryRunSync { self.closeOnLoop() }
        }
    }

    /// `close()` for any thread or task, without blocking.
    public func close() async {
        await withCheckedContinuation { continuation in
            let accepted = loop.execute {
                self.closeOnLoop()
                continuation.resume()
            }
            if !accepted { continuation.resume() }
        }
    }

    private func closeOnLoop() {
        guard !isClosed else { return }
        isClosed = true
        heartbeatManager.forget(self)
        for connection in pool.removeAll() { connection.close(.local) }
        for call in pending.removeAll() { finish(call, .endpointClosed, counting: nil) }
        eventContinuation.finish()
    }

    /// An endpoint's availability as operators see it (the admin endpoint's `/endpoints`).
    public struct Snapshot: Sendable, Equatable {
        public var address: TCPAddress
        public var isAvailable: Bool
        /// The weighted failure count since the last success.
        public var errorCount: Int
        /// Time since the endpoint last became available or unavailable (or was created).
        public var sinceStateChange: Duration
        public var pendingCalls: Int
    }

    /// The endpoint's state now. Any thread or task; a closed loop reports the endpoint unavailable.
    public func snapshot() async -> Snapshot {
        await withCheckedContinuation { (continuation: CheckedContinuation<Snapshot, Never>) in
            let accepted = loop.execute { [self] in continuation.resume(returning: snapshotOnLoop()) }
            if !accepted {
                continuation.resume(
                    returning: Snapshot(
                        address: address, isAvailable: false, errorCount: 0, sinceStateChange: .zero,
                        pendingCalls: 0))
            }
        }
    }

    /// `snapshot()` for code already on the endpoint's loop.
    public func snapshotOnLoop() -> Snapshot {
        loop.preconditionInEventLoop()
        return Snapshot(
            address: address, isAvailable: availability.isAvailable, errorCount: availability.errorCount,
            sinceStateChange: .milliseconds(Int64(loop.now &- availability.changedAt)),
            pendingCalls: pending.count)
    }

    // MARK: heartbeats

    /// Sends one heartbeat to learn whether the server is back; ignores availability.
    func probe(completion: @escaping (Result<Void, TransportError>) -> Void) {
        guard !isClosed else { return completion(.failure(.endpointClosed)) }
        guard let connection = pool.connectionForProbe(connect: makeConnection) else {
            return completion(.failure(.noConnection(endpoint: address.description)))
        }
        sendHeartbeat(on: connection, keepalive: false, completion: completion)
    }

    /// Probes open connections that have been silent for the idle interval.
    func checkIdle(now: UInt64) {
        guard !isClosed, availability.isAvailable,
            let idle = configuration.keepaliveIdleInterval?.roundedUpMilliseconds
        else { return }
        for connection in pool.openConnections
        where !connection.keepaliveInFlight && now &- connection.lastReadAt >= idle {
            connection.keepaliveInFlight = true
            sendHeartbeat(on: connection, keepalive: true) { [self] result in
                connection.keepaliveInFlight = false
                guard case .failure(let error) = result, !isClosed else { return }
                // A silent link that does not answer is half-open or black-holed: stop using it.
                connection.close(.protocolViolation("keepalive heartbeat unanswered"))
                markUnavailable(reason: "keepalive heartbeat failed: \(error)")
            }
        }
    }

    private func sendHeartbeat(
        on connection: ClientConnection, keepalive: Bool,
        completion: @escaping (Result<Void, TransportError>) -> Void
    ) {
        let id = makeRequestID()
        scratch.removeAll(keepingCapacity: true)
        configuration.heartbeatFactory.encodeHeartbeatRequest(requestID: id, into: &scratch)
        let timeoutMilliseconds = configuration.heartbeatTimeout.roundedUpMilliseconds
        let kind = PendingKind.heartbeat(keepalive: keepalive) { [self] result in
            switch result {
            case .success:
                metrics.heartbeatsAnswered.increment()
                emit(.heartbeatAnswered(keepalive: keepalive))
            case .failure(let error):
                metrics.heartbeatsFailed.increment()
                logger.debug("heartbeat to \(address) failed: \(error)")
                emit(.heartbeatFailed(keepalive: keepalive, reason: error.description))
            }
            completion(result)
        }
        pending.insert(
            PendingCall(kind: kind, connectionID: connection.id, timeoutMilliseconds: timeoutMilliseconds),
            id: id)
        wheel.schedule(deadline: loop.now + timeoutMilliseconds, key: id, target: self)
        metrics.heartbeatsSent.increment()
        logger.trace("heartbeat \(id) to \(address)")
        emit(.heartbeatSent(keepalive: keepalive))
        connection.send(scratch)
    }

    // MARK: connection events

    private func makeConnection(slot: Int) -> ClientConnection {
        nextConnectionID += 1
        return ClientConnection(
            id: nextConnectionID, endpoint: self, address: address,
            connectTimeout: configuration.connectTimeout,
            maxContentLength: configuration.maxContentLength)
    }

    func connectionOpened(_ connection: ClientConnection) {
        logger.trace("connected to \(address)")
    }

    func connectionFailed(_ connection: ClientConnection, error: LoopError) {
        pool.release(connection, retryAt: loop.now + configuration.reconnectDelay.roundedUpMilliseconds)
        guard !isClosed else { return }
        logger.debug("connect to \(address) failed: \(error)")
        record(.connectFailed)
        // The connect failure was counted once; the calls queued behind it do not add to it.
        for call in pending.removeAll(onConnection: connection.id) {
            finish(call, .connectFailed(error), counting: nil)
        }
    }

    func connectionClosed(_ connection: ClientConnection, reason: CloseReason) {
        pool.release(connection, retryAt: loop.now)
        guard !isClosed else { return }
        logger.debug("connection to \(address) closed: \(reason)")
        for call in pending.removeAll(onConnection: connection.id) {
            finish(call, .connectionClosed(reason), counting: .callFailed)
        }
    }

    /// A frame arrived: match it to its pending request and complete that.
    func received(_ frame: FrameView, on connection: ClientConnection) {
        guard frame.isResponse else {
            logger.debug("ignoring a request frame from server \(address)")
            return
        }
        guard let call = pending.remove(frame.requestID) else {
            // Late (after its timeout) or unasked for: never a protocol error.
            logger.debug("dropping response \(frame.requestID) from \(address): nothing pending")
            return
        }
        switch call.kind {
        case .heartbeat(_, let completion):
            if configuration.heartbeatFactory.isHeartbeatResponse(frame) && !frame.header.isException {
                noteSuccess(reason: "heartbeat answered")
                completion(.success(()))
            } else {
                completion(.failure(.unexpectedResponse("heartbeat answered with a non-heartbeat frame")))
            }
        case .call(let completion):
            if frame.header.isException {
                let info = MotanErrorInfo(lenientJSON: frame.metaString(forKey: MetaKey.exception))
                // A business exception proves the server works: it resets the count like a success.
                if info.isBusinessError { noteSuccess(reason: "call answered") } else { record(.callFailed) }
                completion(.failure(.remote(info)))
                return
            }
            do {
                let value = try decodeValue(frame)
                noteSuccess(reason: "call answered")
                completion(.success(value))
            } catch {
                record(.callFailed)
                completion(.failure(.invalidResponse(error)))
            }
        }
    }

    /// Bounded like the server's decoding: by the content limit and the budget derived from it.
    private func decodeValue(_ frame: FrameView) throws(MotanCodecError) -> SimpleValue {
        try frame.decodedValues(
            maxContentLength: configuration.maxContentLength,
            budget: DecodeBudget(contentLimit: configuration.maxContentLength)
        ).first ?? .null
    }

    private func finish(
        _ call: PendingCall, _ error: TransportError, counting failure: AvailabilityTracker.Failure?
    ) {
        switch call.kind {
        case .call(let completion):
            if let failure { record(failure) }
            completion(.failure(error))
        case .heartbeat(_, let completion):
            completion(.failure(error))
        }
    }

    // MARK: availability

    private func record(_ failure: AvailabilityTracker.Failure) {
        metrics.callFailures.increment()
        guard let transition = availability.record(failure, now: loop.now) else { return }
        becameUnavailable(transition, reason: failure.description)
    }

    private func markUnavailable(reason: String) {
        guard let transition = availability.forceUnavailable(now: loop.now) else { return }
        becameUnavailable(transition, reason: reason)
    }

    private func noteSuccess(reason: String) {
        guard let transition = availability.recordSuccess(now: loop.now),
            case .becameAvailable(let after) = transition
        else { return }
        metrics.becameAvailable.increment()
        metrics.available.record(1)
        heartbeatManager.stopProbing(self)
        logger.info(
            "endpoint \(address) available again: \(reason), after \(after) ms unavailable (\(unavailableReason))"
        )
        emit(.becameAvailable(reason: reason, unavailableFor: .milliseconds(Int64(after))))
        // Published last, so whoever sees the new state also finds its event already delivered.
        availableFlag.store(true, ordering: .releasing)
    }

    private func becameUnavailable(_ transition: AvailabilityTracker.Transition, reason: String) {
        guard case .becameUnavailable(let after) = transition else { return }
        unavailableReason = reason
        metrics.becameUnavailable.increment()
        metrics.available.record(0)
        logger.info(
            "endpoint \(address) unavailable: \(reason), error count \(availability.errorCount), after \(after) ms available"
        )
        emit(
            .becameUnavailable(
                reason: reason, errorCount: availability.errorCount,
                availableFor: .milliseconds(Int64(after))))
        availableFlag.store(false, ordering: .releasing)
        if !isClosed { heartbeatManager.startProbing(self) }
    }

    private func emit(_ event: EndpointEvent) {
        configuration.onEvent?(event)
        eventContinuation.yield(event)
    }

    private func makeRequestID() -> UInt64 {
        nextRequestID &+= 1
        return nextRequestID
    }
}

extension ClientEndpoint: TimerWheelTarget {
    func timerWheelExpired(key: UInt64) {
        guard let call = pending.remove(key) else { return }
        finish(call, .timeout(milliseconds: call.timeoutMilliseconds), counting: .timeout)
    }
}
