import Logging
import Metrics
import MotanRegistry
import MotanTransport
import Synchronization

/// A Motan2 server as a cluster member: a server endpoint, the services it exports, and the
/// registries that announce them, driven by the heartbeat switch.
///
/// Lifecycle (spec: switcher-and-registries.md §2):
/// - `start()` listens, then registers every service *unavailable* (preview); turning the
///   heartbeat switch on makes them available, turning it off unavailable again.
/// - `shutdown()` drains: services unavailable → wait until subscribers can have seen it → stop
///   accepting and stop answering heartbeats → in-flight requests finish (with a deadline) →
///   unregister → close the endpoint. Nothing in flight is dropped. The registries belong to
///   the caller, who closes them afterwards.
public final class MotanServer: Sendable {
    public struct Configuration: Sendable {
        /// Listening address.
        public var host: String
        /// The host registries publish for clients to reach; nil: `host`. Required when `host` is
        /// a wildcard address (`0.0.0.0`, `::`), which no client can call.
        public var advertisedHost: String?
        /// 0 picks a free port.
        public var port: Int
        public var group: String
        /// Extra URL parameters published with every service (e.g. `application`).
        public var parameters: [String: String]
        public var registries: [any Registry]
        public var switcher: Switcher
        /// Wait between going unavailable and closing the door at shutdown; nil: twice the
        /// slowest registry's propagation delay.
        public var propagationWait: Duration?
        /// How long in-flight requests get to finish once the server stops accepting.
        public var drainTimeout: Duration
        /// Shutdown turns the heartbeat switch off for the whole process (Motan's way); false
        /// marks only this server's registrations unavailable.
        public var switchOffOnShutdown: Bool
        public var endpoint: ServerEndpoint.Configuration
        public var announcer: ServiceAnnouncer.Configuration
        public var logger: Logger

        public init(
            host: String = "127.0.0.1", advertisedHost: String? = nil, port: Int = 0,
            group: String = MotanURL.defaultGroup,
            parameters: [String: String] = [:], registries: [any Registry] = [],
            switcher: Switcher = .shared, propagationWait: Duration? = nil,
            drainTimeout: Duration = .seconds(10), switchOffOnShutdown: Bool = true,
            endpoint: ServerEndpoint.Configuration = .init(),
            announcer: ServiceAnnouncer.Configuration = .init(),
            logger: Logger = Logger(label: "motan.server")
        ) {
            self.host = host
            self.advertisedHost = advertisedHost
            self.port = port
            self.group = group
            self.parameters = parameters
            self.registries = registries
            self.switcher = switcher
            self.propagationWait = propagationWait
            self.drainTimeout = drainTimeout
            self.switchOffOnShutdown = switchOffOnShutdown
            self.endpoint = endpoint
            self.announcer = announcer
            self.logger = logger
        }
    }

    public enum Phase: String, Sendable, Codable {
        case idle, serving, draining, stopped
    }

    public let configuration: Configuration
    public let group: UVEventLoopGroup
    private let services: ServiceRegistry
    private let state = Mutex(State())

    private struct State: @unchecked Sendable {
        var phase: Phase = .idle
        var endpoint: ServerEndpoint?
        var announcer: ServiceAnnouncer?
        var urls: [MotanURL] = []
        var starting = false
        var drained = true
        var published: ServerStatistics?
    }

    public init(
        group: UVEventLoopGroup, services: ServiceRegistry, configuration: Configuration = .init()
    ) {
        self.group = group
        self.services = services
        self.configuration = configuration
    }

    public var phase: Phase { state.withLock { $0.phase } }
    /// The URLs this server registered, one per exported service.
    public var urls: [MotanURL] { state.withLock { $0.urls } }
    public var endpoint: ServerEndpoint? { state.withLock { $0.endpoint } }
    public var port: Int? { endpoint?.port }
    /// After `shutdown()`: whether every request in flight got its answer before the deadline.
    public var drainedEverything: Bool { state.withLock { $0.drained } }

    /// Records the endpoint's statistics as swift-metrics gauges and counters (labels
    /// `motan_server_*`), for a scrape: the admin endpoint calls it before answering `/metrics`.
    public func publishStatistics() {
        guard let statistics = endpoint?.statistics else { return }
        let previous = state.withLock { state in
            defer { state.published = statistics }
            return state.published
        }
        Gauge(label: "motan_server_open_connections").record(statistics.openConnections)
        Gauge(label: "motan_server_requests_in_flight").record(statistics.inFlight)
        let totals: [(String, KeyPath<ServerStatistics, Int>)] = [
            ("motan_server_requests_total", \.requests),
            ("motan_server_heartbeats_answered_total", \.heartbeatsAnswered),
            ("motan_server_rejected_total", \.rejected),
            ("motan_server_malformed_closes_total", \.malformedCloses),
            ("motan_server_read_pauses_total", \.readPauses),
        ]
        for (label, field) in totals {
            let delta = statistics[keyPath: field] - (previous?[keyPath: field] ?? 0)
            if delta > 0 { Counter(label: label).increment(by: delta) }
        }
    }

    /// Listens and registers every service, unavailable until the heartbeat switch is on.
    public func start() async throws(MotanServerError) {
        let claimed = state.withLock { state in
            guard state.phase == .idle, !state.starting else { return false }
            state.starting = true
            return true
        }
        guard claimed else { throw .alreadyStarted }
        defer { state.withLock { $0.starting = false } }
        let published = configuration.advertisedHost ?? configuration.host
        guard !["0.0.0.0", "::", "[::]"].contains(published) || configuration.registries.isEmpty else {
            throw .wildcardHostInRegistry(configuration.host)
        }
        var endpointConfiguration = configuration.endpoint
        endpointConfiguration.host = configuration.host
        endpointConfiguration.port = configuration.port
        let endpoint: ServerEndpoint
        do {
            endpoint = try ServerEndpoint(
                group: group, services: services, configuration: endpointConfiguration)
        } catch {
            throw .transport(error)
        }
        let urls = services.serviceNames.map { makeURL(path: $0, port: endpoint.port) }
        let announcer = ServiceAnnouncer(
            switcher: configuration.switcher, registries: configuration.registries,
            configuration: configuration.announcer)
        state.withLock {
            $0.endpoint = endpoint
            $0.announcer = announcer
            $0.urls = urls
            $0.phase = .serving
        }
        configuration.logger.info(
            "serving \(urls.count) service(s) on \(endpoint.address) in \(configuration.registries.count) registries"
        )
        for url in urls {
            do {
                try await announcer.register(url)
            } catch {
                // Keep serving: direct callers still reach the server, and the log says why
                // registry callers cannot.
                configuration.logger.error("could not register \(url): \(error)")
            }
        }
    }

    /// The registry URL of service `path` on this server: what Go and Java clients read.
    func makeURL(path: String, port: Int) -> MotanURL {
        var parameters = configuration.parameters
        parameters["group"] = configuration.group
        parameters["nodeType"] = "service"
        parameters["serialization"] = "simple"
        parameters["export"] = "motan2:\(port)"
        return MotanURL(
            protocol: "motan2", host: configuration.advertisedHost ?? configuration.host, port: port, path: path,
            parameters: parameters)
    }

    /// How long shutdown waits for subscribers to see the services leave.
    public var propagationWait: Duration {
        configuration.propagationWait
            ?? configuration.registries.map(\.propagationDelay).max().map { $0 * 2 } ?? .zero
    }

    /// Graceful shutdown; returns when the server is closed. Calls made while draining get their
    /// answers; once the drain deadline passes the rest are cut off, and the log says how many.
    public func shutdown() async {
        let taken: (ServerEndpoint?, ServiceAnnouncer?)? = state.withLock { state in
            guard state.phase == .serving else { return nil }
            state.phase = .draining
            return (state.endpoint, state.announcer)
        }
        guard let (endpoint, announcer) = taken else { return }
        let logger = configuration.logger
        let clock = ContinuousClock()
        let started = clock.now

        // 1. Unavailable in every registry. Motan's way is to turn the process-wide switch off;
        // a process that embeds several servers can keep it and take only this one out.
        if configuration.switchOffOnShutdown {
            configuration.switcher.setOnline(false, source: SwitchSource("shutdown"))
            await announcer?.settle()
            await announcer?.stop()
        } else {
            await announcer?.stop()
            for registry in configuration.registries {
                do {
                    try await registry.unavailable(nil)
                } catch {
                    logger.warning("shutdown: unavailable in \(registry.url) failed: \(error)")
                }
            }
        }
        // 2. Subscribers need time to see it; meanwhile the server still answers everything.
        let wait = propagationWait
        if wait > .zero {
            logger.info("shutdown: unavailable in registries; waiting \(wait) for subscribers")
            try? await Task.sleep(for: wait)
        }
        // 3. Close the door: no new connections, and heartbeats close their connection so no
        // client revives this endpoint.
        if let endpoint {
            endpoint.heartbeatsEnabled = false
            // 4. Requests in flight finish and their answers go out; new ones are told the
            // server is shutting down; then the connections close.
            let drained = await endpoint.shutdown(gracePeriod: configuration.drainTimeout)
            state.withLock { $0.drained = drained }
        }
        // 5. Leave the registries. They belong to the caller, who closes them (closing a
        // ZooKeeper registry ends its session, so nothing lingers).
        let urls = state.withLock { $0.urls }
        for registry in configuration.registries {
            for url in urls {
                do {
                    try await registry.unregister(url)
                } catch {
                    logger.warning("shutdown: unregister \(url) from \(registry.url) failed: \(error)")
                }
            }
        }
        state.withLock { $0.phase = .stopped }
        logger.info("shutdown complete in \(clock.now - started)")
    }
}

public enum MotanServerError: Error, Sendable, CustomStringConvertible {
    case alreadyStarted
    case transport(TransportError)
    /// Listening on a wildcard address with registries but no `advertisedHost` to publish.
    case wildcardHostInRegistry(String)

    public var description: String {
        switch self {
        case .alreadyStarted: "the server was started already"
        case .transport(let error): error.description
        case .wildcardHostInRegistry(let host):
            "listening on \(host) publishes an address no client can call: set advertisedHost (motan serve --advertise-host)"
        }
    }
}
