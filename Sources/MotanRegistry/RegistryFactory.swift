import Logging
import MotanLoop
import Synchronization

/// What a registry needs from the process that creates it.
public struct RegistryContext: Sendable {
    /// Where the registry runs its timers and delivers to its listeners.
    public var loop: UVEventLoop
    public var logger: Logger

    public init(loop: UVEventLoop, logger: Logger = Logger(label: "motan.registry")) {
        self.loop = loop
        self.logger = logger
    }
}

/// Turns a `RegistryAddress` into a registry by its scheme. `direct` and `local` are built in;
/// registry modules add theirs (`zookeeper`, `consul`) with `register(scheme:_:)`, so the command
/// line and configuration code need not know every module.
public final class RegistryFactory: Sendable {
    public typealias Maker =
        @Sendable (RegistryAddress, RegistryContext) throws(RegistryError) -> any Registry

    /// The process-wide factory the command line uses.
    public static let shared = RegistryFactory()

    private let makers = Mutex<[String: Maker]>([:])

    /// With `direct` and `local` already known. Every `local://` made by one factory is the same
    /// in-process registry (until it is closed), so a server and a client of one process meet.
    public init() {
        register(scheme: "direct") { address, context throws(RegistryError) in
            try DirectRegistry(address: address, loop: context.loop)
        }
        let local = Mutex<LocalRegistry?>(nil)
        register(scheme: "local") { _, context in
            local.withLock { existing in
                if let existing, !existing.isClosed { return existing }
                let made = LocalRegistry(loop: context.loop, logger: context.logger)
                existing = made
                return made
            }
        }
    }

    /// Adds or replaces the maker for `scheme` (case-insensitive).
    public func register(scheme: String, _ maker: @escaping Maker) {
        makers.withLock { $0[scheme.lowercased()] = maker }
    }

    /// The schemes this factory can make, sorted.
    public var schemes: [String] { makers.withLock { Array($0.keys) }.sorted() }

    public func makeRegistry(
        for address: RegistryAddress, context: RegistryContext
    ) throws(RegistryError) -> any Registry {
        guard let maker = makers.withLock({ $0[address.scheme] }) else {
            throw .invalidConfiguration(
                "no registry for scheme \"\(address.scheme)\" (known: \(schemes.joined(separator: ", ")))")
        }
        return try maker(address, context)
    }

    public func makeRegistry(parsing text: String, context: RegistryContext) throws(RegistryError) -> any Registry {
        try makeRegistry(for: RegistryAddress(parsing: text), context: context)
    }
}
