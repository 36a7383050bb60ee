/// Hears the full current list of available servers of one subscribed service, on every change,
/// the empty list included. Runs on the registry's loop: it must not block.
public typealias RegistryListener = @Sendable (_ servers: [MotanURL]) -> Void

/// Ends one subscription when handed to `Registry.unsubscribe`.
public struct RegistrySubscription: Hashable, Sendable {
    public let id: UInt64
    public init(id: UInt64) { self.id = id }
}

/// Whether a registered service instance is offered to clients.
public enum ServiceState: String, Sendable, Codable {
    case available, unavailable
}

/// One service instance a registry holds for this process.
public struct Registration: Sendable, Hashable {
    public var url: MotanURL
    public var state: ServiceState
    public init(url: MotanURL, state: ServiceState) {
        self.url = url
        self.state = state
    }
}

public enum RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The registry's server could not be reached or did not answer in time.
    case unreachable(registry: String, reason: String)
    /// The registry's server refused or failed an operation.
    case operationFailed(registry: String, operation: String, reason: String)
    /// The URL is not registered here (available/unavailable of a specific URL).
    case notRegistered(String)
    /// A registry URL or address list that cannot be used.
    case invalidConfiguration(String)
    /// The registry was closed.
    case closed

    public var description: String {
        switch self {
        case .unreachable(let registry, let reason): "registry \(registry) unreachable: \(reason)"
        case .operationFailed(let registry, let operation, let reason):
            "registry \(registry): \(operation) failed: \(reason)"
        case .notRegistered(let url): "not registered: \(url)"
        case .invalidConfiguration(let reason): "invalid registry configuration: \(reason)"
        case .closed: "registry closed"
        }
    }
}

/// Where servers announce themselves and clients find them (spec: switcher-and-registries.md §3).
///
/// Every operation is asynchronous and never blocks a loop thread. `register` always enters the
/// instance *unavailable* (preview); `available` / `unavailable` move it, for one URL or (nil) for
/// every URL registered here, which is how the heartbeat switch drives a registry.
public protocol Registry: AnyObject, Sendable {
    /// The registry's own URL, e.g. `zookeeper://127.0.0.1:2181`.
    var url: MotanURL { get }

    func register(_ url: MotanURL) async throws(RegistryError)
    func unregister(_ url: MotanURL) async throws(RegistryError)
    func available(_ url: MotanURL?) async throws(RegistryError)
    func unavailable(_ url: MotanURL?) async throws(RegistryError)

    /// Watches the servers of `url`'s service; `listener` gets the full list now and on every change.
    func subscribe(_ url: MotanURL, listener: @escaping RegistryListener) async throws(RegistryError)
        -> RegistrySubscription
    func unsubscribe(_ subscription: RegistrySubscription) async
    /// One read of the available servers of `url`'s service.
    func discover(_ url: MotanURL) async throws(RegistryError) -> [MotanURL]

    /// How long a change (available, unavailable) takes to reach subscribers, at most, in the
    /// usual case. Graceful shutdown waits twice this before it stops accepting.
    var propagationDelay: Duration { get }

    /// The instances this process registered here, with their states.
    func registrations() async -> [Registration]
    /// Unregisters what this process registered, ends every subscription, and closes any session.
    func close() async
}

extension Registry {
    /// Watches deliver within milliseconds; a second covers clients that, like Java's, act on a
    /// removal a moment later.
    public var propagationDelay: Duration { .seconds(1) }
}
