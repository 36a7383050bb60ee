import Logging
import Metrics
import MotanRegistry
import MotanTransport
import Synchronization

/// The client side of one remote service: subscribes to a registry for the service's servers,
/// keeps one `ClientEndpoint` per server, and routes each call to an available one with a load
/// balancer, retrying on another endpoint when that is safe (`HAStrategy`).
///
/// Everything a cluster owns lives on one loop: its endpoints are created there, registry updates
/// are applied there, and the callback form of `call` runs there, so the call path takes no lock.
/// Spread load over several loops with one cluster per loop.
///
/// Registry updates: an endpoint is reused while its server stays listed; a server the registry
/// stops listing has its endpoint closed at once, which also takes it out of the loop's heartbeat
/// manager. An *empty* list is different: it usually means the last provider switched off or the
/// registry lost its session, and dropping every endpoint would turn a registry hiccup into an
/// outage. The cluster keeps the endpoints it has, says so once in a warning and in the metrics
/// (`motan_cluster_stale_endpoints`, `motan_cluster_empty_lists`), and replaces them as soon as
/// a non-empty list arrives.
public final class Cluster: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var loadBalance: LoadBalance
        public var haStrategy: HAStrategy
        /// For every endpoint the cluster creates.
        public var endpoint: ClientEndpoint.Configuration
        /// nil: the loop's own manager.
        public var heartbeatManager: HeartbeatManager?
        public var logger: Logger
        /// nil: the process-wide `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)?

        public init(
            loadBalance: LoadBalance = .roundRobin, haStrategy: HAStrategy = .failover,
            endpoint: ClientEndpoint.Configuration = .init(), heartbeatManager: HeartbeatManager? = nil,
            logger: Logger = Logger(label: "motan.cluster"), metricsFactory: (any MetricsFactory)? = nil
        ) {
            self.loadBalance = loadBalance
            self.haStrategy = haStrategy
            self.endpoint = endpoint
            self.heartbeatManager = heartbeatManager
            self.logger = logger
            self.metricsFactory = metricsFactory
        }
    }

    /// One endpoint as the cluster sees it.
    public struct EndpointStatus: Sendable, Equatable {
        public var url: MotanURL
        public var address: TCPAddress
        public var isAvailable: Bool
        public var activeCalls: Int
    }

    public struct Status: Sendable, Equatable {
        public var endpoints: [EndpointStatus]
        /// The registry's last list was empty and the endpoints below are the ones kept from before.
        public var keepingStaleEndpoints: Bool
        /// Lists received from the registry, and how many of them were empty.
        public var updates: Int
        public var emptyUpdates: Int
    }

    public let serviceURL: MotanURL
    public let registry: any Registry
    public let loop: UVEventLoop
    public let configuration: Configuration
    public var service: String { serviceURL.path }
    public var group: String { serviceURL.group }

    private final class Member {
        var url: MotanURL
        let endpoint: ClientEndpoint
        var activeCalls = 0
        init(url: MotanURL, endpoint: ClientEndpoint) {
            self.url = url
            self.endpoint = endpoint
        }
    }

    private struct Metrics {
        let endpoints: Gauge
        let staleEndpoints: Gauge
        let emptyLists: Counter
        let failovers: Counter
        let noProvider: Counter

        init(service: String, factory: any MetricsFactory) {
            let dimensions = [("service", service)]
            endpoints = Gauge(label: "motan_cluster_endpoints", dimensions: dimensions, factory: factory)
            staleEndpoints = Gauge(label: "motan_cluster_stale_endpoints", dimensions: dimensions, factory: factory)
            emptyLists = Counter(label: "motan_cluster_empty_lists", dimensions: dimensions, factory: factory)
            failovers = Counter(label: "motan_cluster_failovers", dimensions: dimensions, factory: factory)
            noProvider = Counter(label: "motan_cluster_no_provider", dimensions: dimensions, factory: factory)
        }
    }

    private let logger: Logger
    private let metrics: Metrics
    private let subscription = Mutex<RegistrySubscription?>(nil)

    // Loop-thread state.
    private var members: [Member] = []
    private var keepingStale = false
    private var nextIndex = 0
    private var isClosed = false
    private var updates = 0
    private var emptyUpdates = 0

    /// Creates the cluster; `start()` subscribes. Any thread.
    public init(
        serviceURL: MotanURL, registry: any Registry, loop: UVEventLoop, configuration: Configuration = .init()
    ) {
        self.serviceURL = serviceURL
        self.registry = registry
        self.loop = loop
        self.configuration = configuration
        precondition(
            configuration.heartbeatManager.map { $0.loop === loop } ?? true,
            "the cluster's heartbeat manager must run on the cluster's loop")
        logger = configuration.logger
        metrics = Metrics(
            service: serviceURL.serviceKey, factory: configuration.metricsFactory ?? MetricsSystem.factory)
    }

    /// Drops what a cluster that was never closed still holds: its endpoints' connections and
    /// its subscription. `close()` is the orderly way.
    deinit {
        let endpoints = members.map(\.endpoint)
        if !endpoints.isEmpty {
            loop.execute { for endpoint in endpoints { endpoint.close() } }
        }
        if let made = subscription.withLock({ $0 }), made != Self.starting, made != Self.closedMarker {
            let registry = registry
            Task { await registry.unsubscribe(made) }
        }
    }

    /// Marks a subscription being made, so a concurrent `start()` does not make a second one.
    private static let starting = RegistrySubscription(id: .max)
    /// Marks a closed cluster.
    private static let closedMarker = RegistrySubscription(id: .max - 1)

    /// Subscribes to the registry; endpoints appear when its first list has reached the loop.
    /// Calling it again does nothing; after `close()` it throws `.closed`.
    public func start() async throws(RegistryError) {
        let current = subscription.withLock { current -> RegistrySubscription? in
            defer { if current == nil { current = Self.starting } }
            return current
        }
        if current == Self.closedMarker { throw .closed }
        guard current == nil else { return }
        let made: RegistrySubscription
        do {
            made = try await registry.subscribe(serviceURL) { [weak self] servers in
                guard let self else { return }
                if !loop.execute({ self.apply(servers) }) {
                    logger.debug("cluster loop has shut down; registry update for \(service) dropped")
                }
            }
        } catch {
            subscription.withLock { if $0 == Self.starting { $0 = nil } }
            throw error
        }
        let kept = subscription.withLock { current -> Bool in
            guard current == Self.starting else { return false }
            current = made
            return true
        }
        // Closed while subscribing.
        if !kept { await registry.unsubscribe(made) }
    }

    /// Unsubscribes and closes every endpoint; calls after this fail with `.closed`. Any thread or task.
    public func close() async {
        if let made = subscription.withLock({ current -> RegistrySubscription? in
            defer { current = Self.closedMarker }
            return current
        }), made != Self.starting, made != Self.closedMarker {
            await registry.unsubscribe(made)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = loop.execute { [self] in
                closeOnLoop()
                continuation.resume()
            }
            // A shut-down loop closed the endpoints' connections with it.
            if !accepted { continuation.resume() }
        }
    }

    private func closeOnLoop() {
        guard !isClosed else { return }
        isClosed = true
        for member in members { member.endpoint.close() }
        members = []
        metrics.endpoints.record(0)
        metrics.staleEndpoints.record(0)
    }

    /// The endpoints and counters as they are now. Any thread or task.
    public func status() async -> Status {
        await withCheckedContinuation { (continuation: CheckedContinuation<Status, Never>) in
            let accepted = loop.execute { [self] in continuation.resume(returning: statusOnLoop()) }
            if !accepted {
                continuation.resume(
                    returning: Status(endpoints: [], keepingStaleEndpoints: false, updates: 0, emptyUpdates: 0))
            }
        }
    }

    /// The availability of every endpoint in use. Any thread or task.
    public func endpointSnapshots() async -> [ClientEndpoint.Snapshot] {
        await withCheckedContinuation { (continuation: CheckedContinuation<[ClientEndpoint.Snapshot], Never>) in
            let accepted = loop.execute { [self] in
                continuation.resume(returning: members.map { $0.endpoint.snapshotOnLoop() })
            }
            if !accepted { continuation.resume(returning: []) }
        }
    }

    /// The endpoints in use. Loop thread only.
    public var endpoints: [ClientEndpoint] {
        loop.preconditionInEventLoop()
        return members.map(\.endpoint)
    }

    private func statusOnLoop() -> Status {
        Status(
            endpoints: members.map {
                EndpointStatus(
                    url: $0.url, address: $0.endpoint.address, isAvailable: $0.endpoint.isAvailable,
                    activeCalls: $0.activeCalls)
            },
            keepingStaleEndpoints: keepingStale, updates: updates, emptyUpdates: emptyUpdates)
    }

    // MARK: registry updates (loop thread)

    /// Why `server` cannot serve this cluster's calls, as Java's `canServe` decides, or nil: a
    /// server speaks Motan2 (the only protocol here), is a service node, and offers the same
    /// version. Group and serialization are not compared (a motan2 server serves any).
    static func cannotServe(_ server: MotanURL, version: String) -> String? {
        if server.protocol != "motan2" { return "protocol \(server.protocol) is not motan2" }
        if let nodeType = server.nodeType, nodeType != "service" { return "node type \(nodeType) is not service" }
        if server.version != version { return "version \(server.version) is not \(version)" }
        return nil
    }

    private func apply(_ servers: [MotanURL]) {
        guard !isClosed else { return }
        updates += 1
        var byAddress: [TCPAddress: MotanURL] = [:]
        var order: [TCPAddress] = []
        for url in servers {
            guard url.port > 0, url.port <= 65_535, !url.host.isEmpty else {
                logger.warning("ignoring server \(url) for \(serviceURL.serviceKey): no usable host:port")
                continue
            }
            if let reason = Self.cannotServe(url, version: serviceURL.version) {
                logger.warning("ignoring server \(url) for \(serviceURL.serviceKey): \(reason)")
                continue
            }
            let address = TCPAddress(host: url.host, port: url.port)
            if byAddress.updateValue(url, forKey: address) == nil { order.append(address) }
        }
        // A list of nothing usable is treated like an empty one.
        guard !order.isEmpty else {
            emptyUpdates += 1
            metrics.emptyLists.increment()
            guard !members.isEmpty else {
                logger.debug("registry lists no provider for \(serviceURL.serviceKey)")
                return
            }
            if !keepingStale {
                keepingStale = true
                metrics.staleEndpoints.record(members.count)
                logger.warning(
                    "registry lists no provider for \(serviceURL.serviceKey) any more; keeping the \(members.count) endpoints it listed before (\(members.map { $0.endpoint.address.description }.joined(separator: ", "))) until it lists some again — were the servers switched off (feature.configserver.heartbeat) or did the registry lose them?"
                )
            }
            return
        }
        var kept: [TCPAddress: Member] = [:]
        for member in members {
            if let url = byAddress[member.endpoint.address] {
                member.url = url
                kept[member.endpoint.address] = member
            } else {
                // Closing also stops its heartbeat probes: a removed server is never probed again.
                logger.info("server \(member.endpoint.address) left \(serviceURL.serviceKey); endpoint closed")
                member.endpoint.close()
            }
        }
        members = order.map { address in
            if let member = kept[address] { return member }
            logger.info("server \(address) joined \(serviceURL.serviceKey)")
            let endpoint = ClientEndpoint(
                address: address, loop: loop, configuration: configuration.endpoint,
                heartbeatManager: configuration.heartbeatManager)
            return Member(url: byAddress[address]!, endpoint: endpoint)
        }
        if keepingStale {
            keepingStale = false
            metrics.staleEndpoints.record(0)
            logger.info("registry lists \(members.count) providers for \(serviceURL.serviceKey) again")
        }
        metrics.endpoints.record(members.count)
    }

    // MARK: calls

    /// Calls `method` of the service on an available endpoint; `completion` runs exactly once, on
    /// the loop (possibly before this returns, when the call fails fast). Loop thread only.
    public func call(
        method: String, arguments: [SimpleValue] = [], timeout: Duration? = nil,
        completion: @escaping (Result<SimpleValue, ClusterError>) -> Void
    ) {
        loop.preconditionInEventLoop()
        attempt(
            method: method, arguments: arguments, timeout: timeout, tried: [],
            retriesLeft: configuration.haStrategy.retries,
            completion: completion)
    }

    /// Calls `method` of the service from any thread or task.
    public func call(
        method: String, arguments: [SimpleValue] = [], timeout: Duration? = nil
    ) async throws(ClusterError) -> SimpleValue {
        let result: Result<SimpleValue, ClusterError> = await withCheckedContinuation { continuation in
            let accepted = loop.execute { [self] in
                call(method: method, arguments: arguments, timeout: timeout) { continuation.resume(returning: $0) }
            }
            if !accepted { continuation.resume(returning: .failure(.closed(service: service))) }
        }
        return try result.get()
    }

    private func attempt(
        method: String, arguments: [SimpleValue], timeout: Duration?, tried: [ObjectIdentifier],
        retriesLeft: Int, lastError: (TransportError, String)? = nil,
        completion: @escaping (Result<SimpleValue, ClusterError>) -> Void
    ) {
        guard !isClosed else { return completion(.failure(.closed(service: service))) }
        guard let member = select(excluding: tried) else {
            if let (error, endpoint) = lastError {
                // Nothing else to try: the last endpoint's failure is the answer.
                return completion(.failure(.call(error, endpoint: endpoint, attempts: tried.count)))
            }
            metrics.noProvider.increment()
            if members.isEmpty { return completion(.failure(.noProvider(service: service, group: group))) }
            return completion(.failure(.noAvailableProvider(service: service, group: group, listed: members.count)))
        }
        member.activeCalls += 1
        let endpoint = member.endpoint
        endpoint.call(service: service, method: method, group: group, arguments: arguments, timeout: timeout) {
            [self] result in
            member.activeCalls -= 1
            switch result {
            case .success(let value):
                completion(.success(value))
            case .failure(let error):
                let tried = tried + [ObjectIdentifier(member)]
                guard retriesLeft > 0, configuration.haStrategy.mayRetry(error) else {
                    return completion(
                        .failure(.call(error, endpoint: endpoint.address.description, attempts: tried.count)))
                }
                metrics.failovers.increment()
                logger.debug(
                    "call \(service).\(method) failed on \(endpoint.address) (\(error)); trying another endpoint")
                attempt(
                    method: method, arguments: arguments, timeout: timeout, tried: tried, retriesLeft: retriesLeft - 1,
                    lastError: (error, endpoint.address.description), completion: completion)
            }
        }
    }

    /// An available member not yet tried by this call, by the load-balancing rule. Scans from a
    /// rotating (or random) start instead of building a candidate list: no allocation per call.
    /// As in Java's balancers, an unusable endpoint's turn passes to the next usable one.
    private func select(excluding tried: [ObjectIdentifier]) -> Member? {
        let count = members.count
        guard count > 0 else { return nil }
        func usable(_ member: Member) -> Bool {
            member.endpoint.isAvailable && (tried.isEmpty || !tried.contains(ObjectIdentifier(member)))
        }
        let start: Int
        switch configuration.loadBalance {
        case .roundRobin, .leastActive:
            nextIndex &+= 1
            start = Int(UInt(bitPattern: nextIndex) % UInt(count))
        case .random:
            start = Int.random(in: 0..<count)
        }
        var best: Member?
        for offset in 0..<count {
            let member = members[(start + offset) % count]
            guard usable(member) else { continue }
            guard configuration.loadBalance == .leastActive else { return member }
            if best == nil || member.activeCalls < best!.activeCalls { best = member }
            if member.activeCalls == 0 { break }
        }
        return best
    }
}
