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
        public var logger: Logger

        public init(
            host: String = "127.0.0.1", port: Int = 0,
            maxContentLength: Int = FrameDecoder.defaultMaxContentLength,
            maxInFlightPerConnection: Int = 1024,
            heartbeatFactory: any HeartbeatFactory = Motan2HeartbeatFactory(),
            heartbeatsEnabled: Bool = true,
            logger: Logger = Logger(label: "motan.transport.server")
        ) {
            self.host = host
            self.port = port
            self.maxContentLength = maxContentLength
            self.maxInFlightPerConnection = maxInFlightPerConnection
            self.heartbeatFactory = heartbeatFactory
            self.heartbeatsEnabled = heartbeatsEnabled
            self.logger = logger
        }
    }

    public let configuration: Configuration
    private let shared: ServerShared
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
                maxContentLength: configuration.maxContentLength))
        do {
            server = try TCPServer.bind(host: configuration.host, port: configuration.port, on: group) {
                connection in
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

    /// Stops listening and closes every open connection. Call from outside the loops. After the
    /// group has shut down there is nothing left to close, and this returns at once.
    public func close() {
        server.close()
        for loop in group.loops {
            _ = loop.tryRunSync { self.shared.closeConnections(on: loop) }
        }
    }
}

/// Counts since the server started.
public struct ServerStatistics: Sendable, Equatable {
    public var openConnections: Int
    public var requests: Int
    public var heartbeatsAnswered: Int
    public var rejected: Int
    public var malformedCloses: Int
}

/// State every connection of one server shares.
final class ServerShared: @unchecked Sendable {
    final class Counters: Sendable {
        let openConnections = Atomic<Int>(0)
        let requests = Atomic<Int>(0)
        let heartbeatsAnswered = Atomic<Int>(0)
        let rejected = Atomic<Int>(0)
        let malformedCloses = Atomic<Int>(0)
    }

    let logger: Logger
    let maxContentLength: Int
    let heartbeats: HeartbeatSwitch
    let counters = Counters()
    /// Open connections per loop; each set is touched only on its own loop.
    private let connections: [ObjectIdentifier: LoopConnections]

    final class LoopConnections {
        var open: [ObjectIdentifier: ServerConnection] = [:]
    }

    init(configuration: ServerEndpoint.Configuration, loops: [UVEventLoop]) {
        logger = configuration.logger
        maxContentLength = configuration.maxContentLength
        heartbeats = HeartbeatSwitch(configuration.heartbeatsEnabled)
        var connections: [ObjectIdentifier: LoopConnections] = [:]
        for loop in loops { connections[ObjectIdentifier(loop)] = LoopConnections() }
        self.connections = connections
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

    func closeConnections(on loop: UVEventLoop) {
        guard let set = connections[ObjectIdentifier(loop)] else { return }
        for connection in set.open.values { connection.connection.close(.local) }
    }

    var statistics: ServerStatistics {
        ServerStatistics(
            openConnections: counters.openConnections.load(ordering: .relaxed),
            requests: counters.requests.load(ordering: .relaxed),
            heartbeatsAnswered: counters.heartbeatsAnswered.load(ordering: .relaxed),
            rejected: counters.rejected.load(ordering: .relaxed),
            malformedCloses: counters.malformedCloses.load(ordering: .relaxed))
    }
}
