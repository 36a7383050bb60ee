import Dispatch
import Logging
import MotanCodec
import MotanLoop
import Synchronization

/// A Motan2 server: listens on every loop of a group, decodes and dispatches on the loop that
/// accepted the connection, and answers heartbeats itself.
public final class ServerEndpoint: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// Applied to the meta and the body of each frame separately.
        public var maxContentLength: Int
        /// Requests beyond this many unanswered ones on one connection get a "rejected" error.
        public var maxInFlightPerConnection: Int
        public var heartbeatFactory: any HeartbeatFactory
        public var heartbeatsEnabled: Bool
        /// A connection whose unsent answers pass this many bytes stops being read...
        public var writeHighWatermark: Int
        /// ...until the peer has taken them down to this many.
        public var writeLowWatermark: Int
        /// After the peer half-closes, answers still in the works get this long to be written
        /// before the connection closes without them.
        public var answerDeadlineAfterPeerClose: Duration
        /// Plain (not gzipped) bodies for async handlers up to this size are decoded on the
        /// loop; larger or gzipped ones are decoded in the handler's task.
        public var asyncInlineDecodeLimit: Int
        /// Response bodies longer than this many bytes go out gzip-compressed (Motan's
        /// `mingzSize`), through zlib streams kept per loop; 0 compresses nothing. Answers that
        /// pass a request body through go out as it came.
        public var gzipResponsesAbove: Int
        public var logger: Logger

        public init(
            host: String = "127.0.0.1", port: Int = 0,
            maxContentLength: Int = FrameDecoder.defaultMaxContentLength,
            maxInFlightPerConnection: Int = 1024,
            heartbeatFactory: any HeartbeatFactory = Motan2HeartbeatFactory(),
            heartbeatsEnabled: Bool = true,
            writeHighWatermark: Int = 1 << 20,
            writeLowWatermark: Int = 256 << 10,
            answerDeadlineAfterPeerClose: Duration = .seconds(10),
            asyncInlineDecodeLimit: Int = 4096,
            gzipResponsesAbove: Int = 0,
            logger: Logger = Logger(label: "motan.transport.server")
        ) {
            precondition(writeLowWatermark <= writeHighWatermark, "low watermark above the high one")
            self.host = host
            self.port = port
            self.maxContentLength = maxContentLength
            self.maxInFlightPerConnection = maxInFlightPerConnection
            self.heartbeatFactory = heartbeatFactory
            self.heartbeatsEnabled = heartbeatsEnabled
            self.writeHighWatermark = writeHighWatermark
            self.writeLowWatermark = writeLowWatermark
            self.answerDeadlineAfterPeerClose = answerDeadlineAfterPeerClose
            self.asyncInlineDecodeLimit = asyncInlineDecodeLimit
            self.gzipResponsesAbove = gzipResponsesAbove
            self.logger = logger
        }
    }

    public let configuration: Configuration
    let shared: ServerShared
    private let server: TCPServer
    private let group: UVEventLoopGroup

    /// Binds and starts listening on every loop of `group`. Blocks until all listeners are up;
    /// never call it on a loop thread.
    public init(
        group: UVEventLoopGroup, services: ServiceRegistry, configuration: Configuration = Configuration()
    ) throws(TransportError) {
        self.configuration = configuration
        self.group = group
        let shared = ServerShared(configuration: configuration, loops: group.loops)
        self.shared = shared
        let chain = HeartbeatResponder(
            factory: configuration.heartbeatFactory, switchState: shared.heartbeats,
            next: RequestDispatcher(
                registry: services, maxInFlight: configuration.maxInFlightPerConnection,
                maxContentLength: configuration.maxContentLength,
                inlineDecodeLimit: configuration.asyncInlineDecodeLimit))
        do {
            server = try TCPServer.bind(host: configuration.host, port: configuration.port, on: group) {
                connection in
                // Between stopAccepting() and the listeners closing, a connection may still come in.
                guard shared.isAccepting else { return nil }
                let delegate = ServerConnection(connection: connection, server: shared, handler: chain)
                shared.connectionOpened(delegate)
                return delegate
            }
        } catch {
            throw .bindFailed(error)
        }
        configuration.logger.debug("listening on \(server.address)")
    }

    public var port: Int { server.port }
    public var address: TCPAddress { server.address }

    /// Off: a heartbeat closes its connection instead of being answered.
    public var heartbeatsEnabled: Bool {
        get { shared.heartbeats.isEnabled }
        set { shared.heartbeats.isEnabled = newValue }
    }

    public var statistics: ServerStatistics { shared.statistics }

    // MARK: draining and closing

    /// Stops listening: new connections are refused; on open ones, requests in flight finish and
    /// new ones are answered "shutting down" (503), which a cluster retries elsewhere. Blocks
    /// until every listener is closed; never call it on a loop thread.
    public func stopAccepting() {
        precondition(!onAnyLoop, "ServerEndpoint.stopAccepting() blocks; use the async form on a loop")
        shared.isAccepting = false
        server.close()
    }

    public func stopAccepting() async {
        shared.isAccepting = false
        let server = self.server
        // Closing the listeners waits for their loops: off the cooperative pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                server.close()
                done.resume()
            }
        }
    }

    /// Requests handed to handlers and not answered yet, over all connections.
    public var requestsInFlight: Int { shared.counters.inFlight.load(ordering: .relaxed) }

    /// Waits until no request is in flight on any connection, or `timeout` passes; returns
    /// whether the server went idle. Heartbeats keep being answered meanwhile (unless switched
    /// off); once the server stopped accepting, new requests on open connections are answered
    /// at once with a "shutting down" error (503) instead of being run.
    public func waitUntilIdle(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while requestsInFlight > 0 {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// Stops listening and closes every open connection now; answers not yet written are lost.
    /// Blocks; never call it on a loop thread. After the group has shut down there is nothing
    /// left to close, and this returns at once.
    public func close() {
        precondition(!onAnyLoop, "ServerEndpoint.close() blocks; use `await close()` on a loop")
        shared.isAccepting = false
        server.close()
        for loop in group.loops {
            _ = loop.tryRunSync { self.shared.closeConnections(on: loop, graceful: false) }
        }
    }

    /// Stops listening and closes every open connection now, without blocking a thread.
    public func close() async {
        await stopAccepting()
        await closeConnections(graceful: false)
    }

    /// Graceful shutdown: stop accepting, let requests in flight finish (up to `gracePeriod`),
    /// write their answers, then close every connection. Returns whether every request in
    /// flight was answered in time.
    @discardableResult
    public func shutdown(gracePeriod: Duration) async -> Bool {
        let start = ContinuousClock.now
        await stopAccepting()
        let idle = await waitUntilIdle(timeout: gracePeriod)
        if !idle {
            configuration.logger.warning(
                "shutdown: \(requestsInFlight) requests still in flight after \(gracePeriod); closing anyway")
        }
        await closeConnections(graceful: true)
        // A peer that does not take its last answers is not waited for past the grace period.
        let rest = max(.milliseconds(100), gracePeriod - (ContinuousClock.now - start))
        let deadline = ContinuousClock.now + rest
        while shared.counters.openConnections.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
        }
        await closeConnections(graceful: false)
        return idle
    }

    private func closeConnections(graceful: Bool) async {
        let shared = self.shared
        for loop in group.loops {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let accepted = loop.execute {
                    shared.closeConnections(on: loop, graceful: graceful)
                    done.resume()
                }
                if !accepted { done.resume() }
            }
        }
    }

    private var onAnyLoop: Bool { group.loops.contains { $0.inEventLoop } }
}

/// Counts since the server started.
public struct ServerStatistics: Sendable, Equatable {
    public var openConnections: Int
    public var requests: Int
    public var heartbeatsAnswered: Int
    public var rejected: Int
    public var malformedCloses: Int
    /// Times a connection stopped being read because its unsent answers passed the high watermark.
    public var readPauses: Int
    /// Requests handed to handlers and not answered yet.
    public var inFlight: Int
    /// Answers given to an already answered request (ignored).
    public var duplicateAnswers: Int
    /// Requests whose responder was dropped unanswered (answered "request dropped").
    public var droppedAnswers: Int
    /// Read callbacks and batched socket writes: answers to the frames of one read share a write.
    public var reads: Int
    public var writes: Int
}

/// State every connection of one server shares.
final class ServerShared: @unchecked Sendable {
    final class Counters: Sendable {
        let openConnections = Atomic<Int>(0)
        let requests = Atomic<Int>(0)
        let heartbeatsAnswered = Atomic<Int>(0)
        let rejected = Atomic<Int>(0)
        let malformedCloses = Atomic<Int>(0)
        let readPauses = Atomic<Int>(0)
        let inFlight = Atomic<Int>(0)
        let duplicateAnswers = Atomic<Int>(0)
        let droppedAnswers = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        let writes = Atomic<Int>(0)
        /// Async requests whose arguments were decoded in the task rather than on the loop.
        let deferredDecodes = Atomic<Int>(0)
    }

    let logger: Logger
    let maxContentLength: Int
    let writeHighWatermark: Int
    let writeLowWatermark: Int
    let answerDeadlineAfterPeerClose: Duration
    let gzipResponsesAbove: Int
    let heartbeats: HeartbeatSwitch
    private let accepting = Atomic<Bool>(true)
    let counters = Counters()
    /// Open connections per loop; each set is touched only on its own loop.
    private let connections: [ObjectIdentifier: LoopConnections]

    final class LoopConnections {
        var open: [ObjectIdentifier: ServerConnection] = [:]
    }

    init(configuration: ServerEndpoint.Configuration, loops: [UVEventLoop]) {
        logger = configuration.logger
        maxContentLength = configuration.maxContentLength
        writeHighWatermark = configuration.writeHighWatermark
        writeLowWatermark = configuration.writeLowWatermark
        answerDeadlineAfterPeerClose = configuration.answerDeadlineAfterPeerClose
        gzipResponsesAbove = configuration.gzipResponsesAbove
        heartbeats = HeartbeatSwitch(configuration.heartbeatsEnabled)
        var connections: [ObjectIdentifier: LoopConnections] = [:]
        for loop in loops { connections[ObjectIdentifier(loop)] = LoopConnections() }
        self.connections = connections
    }

    var isAccepting: Bool {
        get { accepting.load(ordering: .relaxed) }
        set { accepting.store(newValue, ordering: .relaxed) }
    }

    func connectionOpened(_ connection: ServerConnection) {
        connections[ObjectIdentifier(connection.loop)]?.open[ObjectIdentifier(connection)] = connection
        counters.openConnections.add(1, ordering: .relaxed)
    }

    func connectionClosed(_ connection: ServerConnection) {
        if connections[ObjectIdentifier(connection.loop)]?.open.removeValue(
            forKey: ObjectIdentifier(connection)) != nil
        {
            counters.openConnections.subtract(1, ordering: .relaxed)
        }
    }

    /// Graceful: answers already queued are written before the close.
    func closeConnections(on loop: UVEventLoop, graceful: Bool) {
        guard let set = connections[ObjectIdentifier(loop)] else { return }
        for connection in set.open.values {
            if graceful {
                connection.closeAfterWrites(.local)
            } else {
                connection.connection.close(.local)
            }
        }
    }

    var statistics: ServerStatistics {
        ServerStatistics(
            openConnections: counters.openConnections.load(ordering: .relaxed),
            requests: counters.requests.load(ordering: .relaxed),
            heartbeatsAnswered: counters.heartbeatsAnswered.load(ordering: .relaxed),
            rejected: counters.rejected.load(ordering: .relaxed),
            malformedCloses: counters.malformedCloses.load(ordering: .relaxed),
            readPauses: counters.readPauses.load(ordering: .relaxed),
            inFlight: counters.inFlight.load(ordering: .relaxed),
            duplicateAnswers: counters.duplicateAnswers.load(ordering: .relaxed),
            droppedAnswers: counters.droppedAnswers.load(ordering: .relaxed),
            reads: counters.reads.load(ordering: .relaxed),
            writes: counters.writes.load(ordering: .relaxed))
    }
}
