import Logging
import MotanLoop
import Synchronization

/// An in-process registry: servers and clients of one process find each other without a
/// registry server. Unlike Java's `LocalRegistryService` it keeps registered instances in two
/// states, like ZooKeeper's `server` and `unavailableServer` directories, so the whole switcher
/// lifecycle (register → unavailable, switch on → available, switch off → gone from the list)
/// behaves here as it does against a real registry.
///
/// Instances are keyed like ZooKeeper nodes: group and path, then `host:port`; registering the
/// same `host:port` for a service again replaces the entry. Subscribers hear the full list of
/// *available* instances of their group and path: once when they subscribe (even when empty),
/// then whenever that list changes (the empty list included). Deliveries run on `loop`, always
/// in a later turn than the call that caused them, and each one reads the list as it is when it
/// runs, so the last delivery a subscriber sees is always the current state.
public final class LocalRegistry: Registry {
    public let url: MotanURL
    /// Delivery is one hop to the registry's loop.
    public var propagationDelay: Duration { .milliseconds(50) }
    /// Where listeners run.
    public let loop: UVEventLoop
    public let logger: Logger

    private struct ServiceKey: Hashable {
        var group: String
        var path: String
        init(_ url: MotanURL) {
            group = url.group
            path = url.path
        }
    }

    private struct Subscriber {
        var key: ServiceKey
        var listener: RegistryListener
    }

    private struct State: ClosableRegistryState {
        var entries: [ServiceKey: [String: Registration]] = [:]
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriptionID: UInt64 = 0
        var isClosed = false

        func available(_ key: ServiceKey) -> [MotanURL] {
            (entries[key] ?? [:]).sorted { $0.key < $1.key }.compactMap {
                $0.value.state == .available ? $0.value.url : nil
            }
        }
    }

    private let state = Mutex(State())

    public init(loop: UVEventLoop, logger: Logger = Logger(label: "motan.registry.local")) {
        self.loop = loop
        self.logger = logger
        url = MotanURL(protocol: "local", host: "", port: 0, path: "")
    }

    /// True once `close()` ran.
    public var isClosed: Bool { state.withLock { $0.isClosed } }

    // MARK: server side

    public func register(_ url: MotanURL) async throws(RegistryError) {
        try update(url, operation: "register") { entries, hostPort in
            entries[hostPort] = Registration(url: url, state: .unavailable)
        }
        logger.debug("registered \(url) (unavailable)")
    }

    public func unregister(_ url: MotanURL) async throws(RegistryError) {
        try update(url, operation: "unregister") { entries, hostPort in
            entries[hostPort] = nil
        }
        logger.debug("unregistered \(url)")
    }

    public func available(_ url: MotanURL?) async throws(RegistryError) {
        try setState(.available, of: url)
    }

    public func unavailable(_ url: MotanURL?) async throws(RegistryError) {
        try setState(.unavailable, of: url)
    }

    private func setState(_ newState: ServiceState, of url: MotanURL?) throws(RegistryError) {
        guard let url else {
            let changed = try state.withOpenState { state -> [ServiceKey] in
                var changed: [ServiceKey] = []
                for key in Array(state.entries.keys) {
                    let before = state.available(key)
                    for hostPort in Array(state.entries[key]!.keys) { state.entries[key]![hostPort]!.state = newState }
                    if state.available(key) != before { changed.append(key) }
                }
                return changed
            }
            changed.forEach(notify)
            return
        }
        var missing = false
        try update(url, operation: newState.rawValue) { entries, hostPort in
            if entries[hostPort] == nil { missing = true } else { entries[hostPort]!.state = newState }
        }
        if missing { throw .notRegistered(url.description) }
    }

    /// Applies `change` to the entries of `url`'s service and notifies if the available list moved.
    private func update(
        _ url: MotanURL, operation: String, _ change: (inout [String: Registration], String) -> Void
    ) throws(RegistryError) {
        let key = ServiceKey(url)
        let moved = try state.withOpenState { state -> Bool in
            let before = state.available(key)
            var entries = state.entries[key] ?? [:]
            change(&entries, url.hostPort)
            state.entries[key] = entries.isEmpty ? nil : entries
            return state.available(key) != before
        }
        if moved { notify(key) }
    }

    // MARK: client side

    public func subscribe(_ url: MotanURL, listener: @escaping RegistryListener) async throws(RegistryError)
        -> RegistrySubscription
    {
        let key = ServiceKey(url)
        let id = try state.withOpenState { state -> UInt64 in
            state.nextSubscriptionID += 1
            state.subscribers[state.nextSubscriptionID] = Subscriber(key: key, listener: listener)
            return state.nextSubscriptionID
        }
        deliver(to: id)
        return RegistrySubscription(id: id)
    }

    public func unsubscribe(_ subscription: RegistrySubscription) async {
        _ = state.withLock { $0.subscribers.removeValue(forKey: subscription.id) }
    }

    public func discover(_ url: MotanURL) async throws(RegistryError) -> [MotanURL] {
        try state.withOpenState { $0.available(ServiceKey(url)) }
    }

    public func registrations() async -> [Registration] {
        state.withLock { state in
            state.entries.values.flatMap(\.values).sorted { $0.url.description < $1.url.description }
        }
    }

    /// Drops every entry and subscription; later operations fail with `.closed`.
    public func close() async {
        let keys = state.withLock { state -> [ServiceKey] in
            state.isClosed = true
            let keys = Array(state.entries.keys)
            state.entries = [:]
            state.subscribers = [:]
            return keys
        }
        logger.debug("local registry closed; dropped the instances of \(keys.count) services")
    }

    // MARK: delivery

    private func notify(_ key: ServiceKey) {
        let ids = state.withLock { state in state.subscribers.filter { $0.value.key == key }.map(\.key) }
        for id in ids.sorted() { deliver(to: id) }
    }

    /// Runs the listener on the loop, with the list as it is then; nothing if it unsubscribed.
    private func deliver(to id: UInt64) {
        let accepted = loop.execute { [self] in
            let found = state.withLock { state -> (RegistryListener, [MotanURL])? in
                guard let subscriber = state.subscribers[id] else { return nil }
                return (subscriber.listener, state.available(subscriber.key))
            }
            guard let (listener, servers) = found else { return }
            listener(servers)
        }
        if !accepted { logger.debug("local registry's loop has shut down; subscription \(id) not notified") }
    }
}
