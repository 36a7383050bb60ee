import Logging
import MotanLoop
import Synchronization

/// A fixed server list with no registry server behind it (`direct://host:port,host:port`).
///
/// `subscribe` and `discover` answer with copies of the subscriber's URL whose host and port are
/// replaced by each listed address, so the endpoints built from them behave exactly like
/// registry-discovered ones (failure counting, heartbeats). Registering does nothing but remember
/// the instance, so the heartbeat switch has no effect here. The list never changes: a
/// subscriber hears it once, on `loop`, in a later turn than `subscribe`.
public final class DirectRegistry: Registry {
    public let url: MotanURL
    /// The list never changes: there is nothing to propagate.
    public var propagationDelay: Duration { .zero }
    public let servers: [RegistryAddress.Host]
    public let loop: UVEventLoop

    private struct State: ClosableRegistryState {
        var registered: [String: Registration] = [:]
        var subscriptions: Set<UInt64> = []
        var nextSubscriptionID: UInt64 = 0
        var isClosed = false
    }

    private let state = Mutex(State())

    public init(servers: [RegistryAddress.Host], loop: UVEventLoop) throws(RegistryError) {
        guard !servers.isEmpty else { throw .invalidConfiguration("a direct registry needs at least one server") }
        self.servers = servers
        self.loop = loop
        url = RegistryAddress(scheme: "direct", hosts: servers).url
    }

    public convenience init(address: RegistryAddress, loop: UVEventLoop) throws(RegistryError) {
        try self.init(servers: address.hosts, loop: loop)
    }

    /// The subscriber's URL once per listed server, with that server's host and port, as a
    /// service node (what a registry would list for a server).
    public func servers(for subscriber: MotanURL) -> [MotanURL] {
        servers.map { server in
            var url = subscriber
            url.host = server.host
            url.port = server.port
            url[parameter: "nodeType"] = "service"
            return url
        }
    }

    public func register(_ url: MotanURL) async throws(RegistryError) {
        try record(url, .unavailable)
    }

    public func unregister(_ url: MotanURL) async throws(RegistryError) {
        try state.withOpenState { $0.registered[url.identity] = nil }
    }

    public func available(_ url: MotanURL?) async throws(RegistryError) { try move(url, to: .available) }
    public func unavailable(_ url: MotanURL?) async throws(RegistryError) { try move(url, to: .unavailable) }

    private func record(_ url: MotanURL, _ serviceState: ServiceState) throws(RegistryError) {
        try state.withOpenState { $0.registered[url.identity] = Registration(url: url, state: serviceState) }
    }

    /// Only bookkeeping: nobody reads states from a direct registry.
    private func move(_ url: MotanURL?, to serviceState: ServiceState) throws(RegistryError) {
        let known = try state.withOpenState { state -> Bool in
            guard let url else {
                for key in Array(state.registered.keys) { state.registered[key]!.state = serviceState }
                return true
            }
            guard state.registered[url.identity] != nil else { return false }
            state.registered[url.identity]!.state = serviceState
            return true
        }
        if !known, let url { throw .notRegistered(url.description) }
    }

    public func subscribe(_ url: MotanURL, listener: @escaping RegistryListener) async throws(RegistryError)
        -> RegistrySubscription
    {
        let id = try state.withOpenState { state -> UInt64 in
            state.nextSubscriptionID += 1
            state.subscriptions.insert(state.nextSubscriptionID)
            return state.nextSubscriptionID
        }
        let list = servers(for: url)
        loop.execute { [self] in
            if state.withLock({ $0.subscriptions.contains(id) }) { listener(list) }
        }
        return RegistrySubscription(id: id)
    }

    public func unsubscribe(_ subscription: RegistrySubscription) async {
        _ = state.withLock { $0.subscriptions.remove(subscription.id) }
    }

    public func discover(_ url: MotanURL) async throws(RegistryError) -> [MotanURL] {
        try state.withOpenState { _ in () }
        return servers(for: url)
    }

    public func registrations() async -> [Registration] {
        state.withLock { Array($0.registered.values) }.sorted { $0.url.description < $1.url.description }
    }

    public func close() async {
        state.withLock { state in
            state.isClosed = true
            state.registered = [:]
            state.subscriptions = []
        }
    }
}
