import Logging
import MotanHTTP
import MotanLoop
import MotanRegistry

/// A registry backed by the local Consul agent, with Motan's conventions (switcher-and-registries.md
/// §6): service `motanrpc_<group>`, id `host:port-path`, tags `protocol_<p>` and `URL_<encoded URL>`,
/// one TTL check per instance registered with it. All state lives on one loop; nothing blocks it.
///
/// Differences from Motan's Java registry, on purpose: every write is a PUT; `available` and
/// `unavailable` of one URL work; a switch flip reaches the agent at once (not at the next 2 s
/// poll); discovery runs blocking queries without the fixed 30 s pre-sleep (rate limited
/// instead); and subscribers also hear an empty list.
public final class ConsulRegistry: Registry, @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The check's TTL; the agent marks an instance critical if no pass arrives for this long.
        public var ttl: Duration
        /// How often an available instance's check is passed; must be well below `ttl`.
        public var passInterval: Duration
        /// How long one blocking query may wait at the agent.
        public var blockingWait: Duration
        /// Timeout of every other request.
        public var requestTimeout: Duration
        public var initialRetryDelay: Duration
        public var maxRetryDelay: Duration
        /// Rate limit of one group's lookups (token bucket).
        public var lookupsPerSecond: Double
        public var lookupBurst: Double

        public init(
            ttl: Duration = .seconds(30), passInterval: Duration = .seconds(20), blockingWait: Duration = .seconds(540),
            requestTimeout: Duration = .seconds(5), initialRetryDelay: Duration = .milliseconds(250),
            maxRetryDelay: Duration = .seconds(10), lookupsPerSecond: Double = 10, lookupBurst: Double = 2
        ) {
            self.ttl = ttl
            self.passInterval = passInterval
            self.blockingWait = blockingWait
            self.requestTimeout = requestTimeout
            self.initialRetryDelay = initialRetryDelay
            self.maxRetryDelay = maxRetryDelay
            self.lookupsPerSecond = lookupsPerSecond
            self.lookupBurst = lookupBurst
        }
    }

    public static let defaultPort = 8500

    public let url: MotanURL
    public let loop: UVEventLoop
    public let agent: TCPAddress
    public let configuration: Configuration
    private let logger: Logger
    private let client: LoopHTTPClient
    private let api: ConsulAgentAPI
    // Loop-confined state.
    private var heartbeat: ConsulHeartbeatManager!
    private var watches: [String: ConsulGroupWatch] = [:]
    private var subscriptionGroups: [UInt64: String] = [:]
    private var nextSubscription: UInt64 = 1
    private var closed = false

    /// `url` is the registry URL, `consul://host:port` (default port 8500). Its loop carries every
    /// request, timer and callback of this registry.
    public init(
        url: MotanURL, loop: UVEventLoop, configuration: Configuration = Configuration(), logger: Logger? = nil
    ) throws(RegistryError) {
        guard !url.host.isEmpty else { throw .invalidConfiguration("no agent host in \(url)") }
        guard configuration.passInterval < configuration.ttl else {
            throw .invalidConfiguration("pass interval \(configuration.passInterval) must be below the TTL")
        }
        self.url = url
        self.loop = loop
        self.configuration = configuration
        agent = TCPAddress(host: url.host, port: url.port > 0 ? url.port : Self.defaultPort)
        self.logger = logger ?? Logger(label: "motan.registry.consul")
        client = LoopHTTPClient(
            loop: loop,
            configuration: .init(
                connectTimeout: configuration.requestTimeout, defaultTimeout: configuration.requestTimeout))
        api = ConsulAgentAPI(client: client, agent: agent, requestTimeout: configuration.requestTimeout)
        let timing = ConsulHeartbeatManager.Timing(
            ttl: configuration.ttl, passInterval: configuration.passInterval,
            initialRetryDelay: configuration.initialRetryDelay, maxRetryDelay: configuration.maxRetryDelay)
        heartbeat = ConsulHeartbeatManager(loop: loop, api: api, timing: timing, logger: self.logger)
    }

    /// Reads `consul://host:port` text.
    public convenience init(
        address: String, loop: UVEventLoop, configuration: Configuration = Configuration(), logger: Logger? = nil
    ) throws(RegistryError) {
        guard let url = MotanURL(parsing: address), url.protocol == "consul" else {
            throw .invalidConfiguration("not a consul:// address: \(address)")
        }
        try self.init(url: url, loop: loop, configuration: configuration, logger: logger)
    }

    // MARK: Registry

    /// Registers `url` with a critical TTL check. If the agent cannot be reached this throws, and
    /// the registry keeps the instance and retries with backoff until it can (or `unregister`).
    public func register(_ url: MotanURL) async throws(RegistryError) {
        try await call("register") { heartbeat, done in heartbeat.register(url, done) }
    }

    public func unregister(_ url: MotanURL) async throws(RegistryError) {
        try await call("unregister") { heartbeat, done in heartbeat.unregister(url, done) }
    }

    /// Passes the check now (nil: of every instance registered here); the heartbeat keeps passing it.
    /// If the agent cannot be told, this throws, and the registry keeps trying.
    public func available(_ url: MotanURL?) async throws(RegistryError) {
        try await setState(.available, url)
    }

    /// Fails the check now (nil: of every instance); if the agent cannot be told, this throws and
    /// the registry keeps trying.
    public func unavailable(_ url: MotanURL?) async throws(RegistryError) {
        try await setState(.unavailable, url)
    }

    private func setState(_ state: ServiceState, _ url: MotanURL?) async throws(RegistryError) {
        let outcome: Result<Void, RegistryError>? = await onLoop {
            (finish: @escaping (Result<Void, RegistryError>) -> Void) in
            do throws(RegistryError) {
                try self.heartbeat.setState(state, of: url) { result in finish(self.translate(result, "\(state)")) }
            } catch {
                finish(.failure(error))
            }
        }
        try (outcome ?? .failure(.closed)).get()
    }

    public func subscribe(_ url: MotanURL, listener: @escaping RegistryListener) async throws(RegistryError)
        -> RegistrySubscription
    {
        let result: UInt64?? = await onLoop { (finish: @escaping (UInt64?) -> Void) in
            self.addSubscription(url, listener: listener, finish)
        }
        guard let id = result ?? nil else { throw .closed }
        return RegistrySubscription(id: id)
    }

    public func unsubscribe(_ subscription: RegistrySubscription) async {
        let _: Bool? = await onLoop { (finish: @escaping (Bool) -> Void) in
            if let group = self.subscriptionGroups.removeValue(forKey: subscription.id),
                let watch = self.watches[group]
            {
                watch.remove(id: subscription.id)
                if watch.isStopped { self.watches[group] = nil }
            }
            finish(true)
        }
    }

    public func discover(_ url: MotanURL) async throws(RegistryError) -> [MotanURL] {
        let group = url.group
        let outcome: Result<[MotanURL], RegistryError>? = await onLoop { finish in
            self.api.health(service: ConsulConventions.serviceName(group: group), index: 0, wait: .zero) { result in
                switch result {
                case .success(let answer):
                    let urls = answer.entries.compactMap { ConsulConventions.url(of: $0.Service, group: group) }
                    finish(.success(urls.filter { $0.path == url.path }.sorted { $0.description < $1.description }))
                case .failure(let error):
                    finish(.failure(self.registryError(error, "discover")))
                }
            }
        }
        return try (outcome ?? .failure(.closed)).get()
    }

    public func registrations() async -> [Registration] {
        await onLoop { finish in
            finish(self.heartbeat.instances.values.map { Registration(url: $0.url, state: $0.state) })
        } ?? []
    }

    /// Deregisters every instance registered here, ends every subscription and closes the connections.
    public func close() async {
        let _: Bool? = await onLoop { (finish: @escaping (Bool) -> Void) in
            guard !self.closed else { return finish(true) }
            self.closed = true
            for watch in self.watches.values { watch.stop() }
            self.watches.removeAll()
            self.subscriptionGroups.removeAll()
            self.heartbeat.close {
                self.client.close()
                finish(true)
            }
        }
    }

    /// Check passes sent by the heartbeat so far (diagnostics).
    public func passesSent() async -> Int {
        await onLoop { finish in finish(self.heartbeat.passesSent) } ?? 0
    }

    // MARK: helpers

    private func addSubscription(
        _ url: MotanURL, listener: @escaping RegistryListener, _ finish: @escaping (UInt64?) -> Void
    ) {
        guard !closed else { return finish(nil) }
        let id = nextSubscription
        nextSubscription += 1
        let group = url.group
        let watch: ConsulGroupWatch
        if let existing = watches[group], !existing.isStopped {
            watch = existing
        } else {
            watch = makeWatch(group: group)
            watches[group] = watch
        }
        subscriptionGroups[id] = group
        watch.add(id: id, path: url.path, listener: listener) { finish(id) }
    }

    private func makeWatch(group: String) -> ConsulGroupWatch {
        ConsulGroupWatch(
            group: group, loop: loop, api: api,
            timing: .init(
                blockingWait: configuration.blockingWait, initialRetryDelay: configuration.initialRetryDelay,
                maxRetryDelay: configuration.maxRetryDelay, queriesPerSecond: configuration.lookupsPerSecond,
                burst: configuration.lookupBurst),
            logger: logger
        ) { [weak self] in
            self?.heartbeat.agentForgotEverything()
        }
    }

    private func call(
        _ operation: String,
        _ body: @escaping (ConsulHeartbeatManager, @escaping (Result<Void, ConsulCallError>) -> Void) -> Void
    ) async throws(RegistryError) {
        let outcome: Result<Void, RegistryError>? = await onLoop { finish in
            guard !self.closed else { return finish(.failure(.closed)) }
            body(self.heartbeat) { result in finish(self.translate(result, operation)) }
        }
        try (outcome ?? .failure(.closed)).get()
    }

    private func translate(_ result: Result<Void, ConsulCallError>, _ operation: String) -> Result<Void, RegistryError>
    {
        result.mapError { registryError($0, operation) }
    }

    private func registryError(_ error: ConsulCallError, _ operation: String) -> RegistryError {
        switch error {
        case .transport: .unreachable(registry: agent.description, reason: "\(error)")
        default: .operationFailed(registry: agent.description, operation: operation, reason: "\(error)")
        }
    }

    /// Runs `body` on the loop and waits for it to call back; nil if the loop has shut down.
    private func onLoop<T: Sendable>(_ body: @escaping (@escaping (T) -> Void) -> Void) async -> T? {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            nonisolated(unsafe) let body = body
            let accepted = loop.execute {
                var resumed = false
                body { value in
                    guard !resumed else { return }
                    resumed = true
                    continuation.resume(returning: value)
                }
            }
            if !accepted { continuation.resume(returning: nil) }
        }
    }
}
