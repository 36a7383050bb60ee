import Logging
import MotanLoop
import MotanRegistry

/// Motan's ZooKeeper registry (spec: switcher-and-registries.md §5) over `ZooKeeperClient`.
///
/// Nodes: `/motan/<group>/<interface>/{server,unavailableServer,client}/<host:port>`, ephemeral,
/// data = the URL text. After a session expiry it re-creates every node it owns and re-arms every
/// watch by itself; a subscriber of a service with no `server` node yet watches for it to appear;
/// an empty server list reaches subscribers; `close()` deletes its nodes and closes the session.
public actor ZooKeeperRegistry: Registry {
    public nonisolated let url: MotanURL
    public nonisolated let client: ZooKeeperClient
    private let logger: Logger
    private nonisolated var name: String { url.description }

    private var owned: [String: Registration] = [:]

    private struct Subscription {
        let url: MotanURL
        let listener: RegistryListener
        var generation = 0
        var needsRefresh = false
    }
    private var subscriptions: [UInt64: Subscription] = [:]
    private var nextSubscriptionID: UInt64 = 0
    /// The command string of each subscribed group (read and watched, not applied).
    private var commands: [String: String] = [:]
    private var watchedCommandGroups: Set<String> = []
    private var isClosed = false
    private var hadSession = false

    /// `url` is the registry's URL: `zookeeper://host:port`, or several servers in its `address`
    /// parameter (`h1:p1,h2:p2`); `registrySessionTimeout` (ms, default 60 000) sets the session.
    public init(
        url: MotanURL, loop: UVEventLoop, configuration: ZooKeeperClient.Configuration? = nil,
        logger: Logger = Logger(label: "motan.registry.zookeeper")
    ) throws(RegistryError) {
        self.url = url
        self.logger = logger
        let connectString = url.parameters["address"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(url.host):\(url.port)"
        var config = configuration ?? ZooKeeperClient.Configuration()
        if configuration == nil, let ms = url.parameters["registrySessionTimeout"].flatMap({ Int($0) }), ms > 0 {
            config.sessionTimeout = .milliseconds(ms)
        } else if configuration == nil {
            config.sessionTimeout = .seconds(60)
        }
        do {
            client = try ZooKeeperClient(
                connectString: connectString, loop: loop, configuration: config, logger: logger)
        } catch {
            throw .invalidConfiguration("ZooKeeper address '\(connectString)': \(error)")
        }
        let client = self.client
        loop.execute { [weak self] in
            client.addSessionListener { event in
                guard let self else { return }
                Task { await self.sessionEvent(event) }
            }
        }
    }

    // MARK: paths

    private static func servicePath(_ url: MotanURL) -> String { "/motan/\(url.group)/\(url.path)" }
    private static func node(_ url: MotanURL, _ directory: String) -> String {
        "\(servicePath(url))/\(directory)/\(url.hostPort)"
    }
    private static func key(_ url: MotanURL) -> String { "\(servicePath(url))/\(url.hostPort)" }

    // MARK: errors

    private func registryError(_ error: ZooKeeperError, _ operation: String) -> RegistryError {
        switch error {
        case .closed: return .closed
        case .connectionLoss, .sessionExpired, .operationTimeout, .requestTimeout:
            return .unreachable(registry: name, reason: "\(operation): \(error)")
        default: return .operationFailed(registry: name, operation: operation, reason: "\(error)")
        }
    }

    /// Runs `body`, retrying once the client is connected again after a lost connection, a few times.
    private func retrying<T: Sendable>(
        _ operation: String, _ body: () async throws(ZooKeeperError) -> T
    ) async throws(RegistryError) -> T {
        var attempt = 0
        while true {
            guard !isClosed else { throw .closed }
            do {
                return try await body()
            } catch let error where (error == .connectionLoss || error == .sessionExpired) && attempt < 3 {
                attempt += 1
                do {
                    try await client.waitUntilConnected(timeout: client.configuration.sessionTimeout)
                } catch {
                    throw registryError(error, operation)
                }
            } catch {
                throw registryError(error, operation)
            }
        }
    }

    // MARK: node primitives

    /// Creates an ephemeral node of this session; a node left by another (dead) session is
    /// replaced, one of ours gets `data` if it differs.
    private func createEphemeral(_ path: String, _ data: [UInt8]) async throws(ZooKeeperError) {
        for _ in 0..<4 {
            do {
                try await client.create(path, data: data, mode: .ephemeral, createParents: true)
                return
            } catch .nodeExists {
                let existing: (data: [UInt8], stat: ZooKeeperStat)
                do {
                    existing = try await client.getData(path)
                } catch .noNode {
                    continue
                }
                if existing.stat.ephemeralOwner == client.session?.id {
                    if existing.data != data { try await client.setData(path, data: data) }
                    return
                }
                logger.info(
                    "replacing a node of another session",
                    metadata: ["path": "\(path)", "owner": "\(hex(existing.stat.ephemeralOwner))"])
                do {
                    try await client.delete(path, version: existing.stat.version)
                } catch .noNode, .badVersion {
                    continue
                }
            }
        }
        throw .nodeExists
    }

    private func deleteIfPresent(_ path: String) async throws(ZooKeeperError) {
        do {
            try await client.delete(path)
        } catch .noNode {
            return
        }
    }

    /// Puts `url`'s node under `directory` and removes it from the other one; creating first
    /// means subscribers never see a gap while a node moves.
    private func place(_ url: MotanURL, state: ServiceState) async throws(ZooKeeperError) {
        let (target, other) =
            state == .available ? ("server", "unavailableServer") : ("unavailableServer", "server")
        try await createEphemeral(Self.node(url, target), MotanNodeData.encode(url))
        try await deleteIfPresent(Self.node(url, other))
    }

    // MARK: Registry

    public func register(_ url: MotanURL) async throws(RegistryError) {
        if let version = url.parameters["version"], version != MotanURL.defaultVersion {
            throw .invalidConfiguration(
                "version '\(version)' of \(url.path): motan-go clients accept only 1.0 or no version")
        }
        guard !isClosed else { throw .closed }
        owned[Self.key(url)] = Registration(url: url, state: .unavailable)
        try await retrying("register") { () throws(ZooKeeperError) in try await place(url, state: .unavailable) }
        logger.info("registered (unavailable)", metadata: ["url": "\(url)"])
    }

    public func unregister(_ url: MotanURL) async throws(RegistryError) {
        owned[Self.key(url)] = nil
        try await retrying("unregister") { () throws(ZooKeeperError) in
            try await deleteIfPresent(Self.node(url, "server"))
            try await deleteIfPresent(Self.node(url, "unavailableServer"))
        }
        logger.info("unregistered", metadata: ["url": "\(url)"])
    }

    public func available(_ url: MotanURL?) async throws(RegistryError) {
        try await setState(url, .available)
    }

    public func unavailable(_ url: MotanURL?) async throws(RegistryError) {
        try await setState(url, .unavailable)
    }

    private func setState(_ url: MotanURL?, _ state: ServiceState) async throws(RegistryError) {
        let keys: [String]
        if let url {
            guard owned[Self.key(url)] != nil else { throw .notRegistered(url.description) }
            keys = [Self.key(url)]
        } else {
            keys = Array(owned.keys)
        }
        var failure: RegistryError?
        for key in keys {
            guard var registration = owned[key] else { continue }
            registration.state = state
            owned[key] = registration
            let target = registration.url
            do {
                try await retrying(state == .available ? "available" : "unavailable") { () throws(ZooKeeperError) in
                    try await place(target, state: state)
                }
                logger.info("now \(state.rawValue)", metadata: ["url": "\(target)"])
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
    }

    public func subscribe(
        _ url: MotanURL, listener: @escaping RegistryListener
    ) async throws(RegistryError) -> RegistrySubscription {
        guard !isClosed else { throw .closed }
        nextSubscriptionID += 1
        let id = nextSubscriptionID
        subscriptions[id] = Subscription(url: url, listener: listener)
        do {
            try await retrying("subscribe") { () throws(ZooKeeperError) in
                try await createEphemeral(Self.node(url, "client"), MotanNodeData.encode(url))
                try await watchCommand(group: url.group)
                try await refresh(id)
            }
        } catch {
            subscriptions[id] = nil
            throw error
        }
        return RegistrySubscription(id: id)
    }

    public func unsubscribe(_ subscription: RegistrySubscription) async {
        guard let removed = subscriptions.removeValue(forKey: subscription.id) else { return }
        let clientNode = Self.node(removed.url, "client")
        guard !subscriptions.values.contains(where: { Self.node($0.url, "client") == clientNode }) else { return }
        try? await deleteIfPresent(clientNode)
    }

    public func discover(_ url: MotanURL) async throws(RegistryError) -> [MotanURL] {
        try await retrying("discover") { () throws(ZooKeeperError) in try await readServers(url, watcher: nil) }
    }

    public func registrations() async -> [Registration] {
        owned.values.sorted { $0.url.description < $1.url.description }
    }

    /// The command string last read for `group` (commands are watched, not applied).
    public func command(group: String) -> String? { commands[group] }

    public func close() async {
        guard !isClosed else { return }
        // Disconnected, the deletes could only fail one by one; closeSession (when it gets
        // through) or the session timeout removes the nodes instead.
        if client.isConnected {
            await deleteOwnNodes()
        }
        isClosed = true
        owned = [:]
        subscriptions = [:]
        await client.close()
        logger.info("closed", metadata: ["registry": "\(name)"])
    }

    private func deleteOwnNodes() async {
        for registration in owned.values {
            try? await deleteIfPresent(Self.node(registration.url, "server"))
            try? await deleteIfPresent(Self.node(registration.url, "unavailableServer"))
        }
        for subscription in subscriptions.values {
            try? await deleteIfPresent(Self.node(subscription.url, "client"))
        }
    }

    // MARK: watching

    /// The servers of `url`'s service; with a watcher, a child watch on `server`, or an exists
    /// watch when `server` does not exist yet (then the list is empty).
    private func readServers(_ url: MotanURL, watcher: ZooKeeperWatcher?) async throws(ZooKeeperError) -> [MotanURL] {
        let path = Self.servicePath(url) + "/server"
        let children: [String]
        do {
            children = try await client.getChildren(path, watcher: watcher).children
        } catch .noNode {
            if let watcher, try await client.exists(path, watcher: watcher) != nil {
                // Created between the two reads: the exists watch is set, read again.
                return try await readServers(url, watcher: nil)
            }
            return []
        }
        var servers: [MotanURL] = []
        for child in children.sorted() {
            let data: [UInt8]?
            do {
                data = try await client.getData(path + "/" + child).data
            } catch .noNode {
                continue  // gone meanwhile; the watch reports it
            }
            servers.append(MotanNodeData.serverURL(child: child, data: data, subscriber: url))
        }
        return servers
    }

    private func refresh(_ id: UInt64) async throws(ZooKeeperError) {
        guard var subscription = subscriptions[id] else { return }
        subscription.generation += 1
        subscription.needsRefresh = true
        let generation = subscription.generation
        subscriptions[id] = subscription
        let watcher: ZooKeeperWatcher = { [weak self] event in
            guard event.type != .none, let self else { return }
            Task { await self.serverListChanged(id) }
        }
        let servers = try await readServers(subscription.url, watcher: watcher)
        guard let current = subscriptions[id], current.generation == generation else { return }
        subscriptions[id]?.needsRefresh = false
        let listener = current.listener
        logger.debug("servers", metadata: ["service": "\(current.url.path)", "count": "\(servers.count)"])
        client.loop.execute { listener(servers) }
    }

    private func serverListChanged(_ id: UInt64) async {
        guard !isClosed else { return }
        do {
            try await refresh(id)
        } catch {
            // The next connected event refreshes subscriptions marked as needing it.
            logger.info("server list refresh failed", metadata: ["error": "\(error)"])
        }
    }

    private func watchCommand(group: String) async throws(ZooKeeperError) {
        guard !watchedCommandGroups.contains(group) else { return }
        watchedCommandGroups.insert(group)
        do {
            try await readCommand(group: group)
        } catch {
            watchedCommandGroups.remove(group)
            throw error
        }
    }

    private func readCommand(group: String) async throws(ZooKeeperError) {
        let path = "/motan/\(group)/command"
        let watcher: ZooKeeperWatcher = { [weak self] event in
            guard event.type != .none, let self else { return }
            Task { try? await self.readCommand(group: group) }
        }
        let text: String?
        do {
            text = MotanNodeData.text(try await client.getData(path, watcher: watcher).data)
        } catch .noNode {
            text = try await client.exists(path, watcher: watcher) == nil ? nil : commands[group]
        }
        if commands[group] != text {
            logger.info("command for group \(group) is now \(text.map { "'\($0)'" } ?? "absent") (not applied)")
        }
        commands[group] = text
    }

    // MARK: sessions

    private func sessionEvent(_ event: ZooKeeperSessionEvent) async {
        guard !isClosed, case .connected(_, _, let isNew) = event else { return }
        if isNew {
            watchedCommandGroups = []
            if hadSession && (!owned.isEmpty || !subscriptions.isEmpty) {
                logger.warning("new ZooKeeper session: re-creating nodes and watches")
            }
            hadSession = true
        }
        await recover(resubscribe: isNew)
    }

    /// Puts every owned node back (a no-op for nodes still there) and re-reads subscriptions.
    private func recover(resubscribe: Bool) async {
        for registration in owned.values {
            do {
                try await place(registration.url, state: registration.state)
            } catch {
                logger.warning("re-creating \(registration.url) failed: \(error)")
            }
        }
        for (id, subscription) in subscriptions where resubscribe || subscription.needsRefresh {
            do {
                if resubscribe {
                    try await createEphemeral(
                        Self.node(subscription.url, "client"), MotanNodeData.encode(subscription.url))
                    try await watchCommand(group: subscription.url.group)
                }
                try await refresh(id)
            } catch {
                logger.warning("re-subscribing \(subscription.url.path) failed: \(error)")
            }
        }
    }
}
