import Logging
import MotanLoop
import Synchronization

/// Announces this process's services in its registries and keeps their availability following
/// the heartbeat switch, `feature.configserver.heartbeat` (spec: switcher-and-registries.md §1.1,
/// §2.1):
/// - `register(url)` enters the instance in every registry, unavailable; when the switch is
///   already on it then calls `available(url)` at once (the race Java fixed in PR #305: a switch
///   turned on before the registration would otherwise never make it available);
/// - switch on → `available(nil)` on every registry; switch off → `unavailable(nil)`;
/// - registering while the switch is off logs a warning, once, saying which switch to turn on and
///   how; if the switch is still off `reminderDelay` later, one more warning says so.
///
/// Registrations and switch changes are applied one at a time in the order they happened, so a
/// registry never ends in a state that contradicts the switch.
public final class ServiceAnnouncer: Sendable {
    public struct Configuration: Sendable {
        /// A second warning when services stay registered but unavailable this long; nil: none.
        public var reminderDelay: Duration?
        public var logger: Logger

        public init(reminderDelay: Duration? = .seconds(60), logger: Logger = Logger(label: "motan.announcer")) {
            self.reminderDelay = reminderDelay
            self.logger = logger
        }
    }

    public let switcher: Switcher
    public let registries: [any Registry]
    public let configuration: Configuration

    private enum Command: Sendable {
        case register(MotanURL, CheckedContinuation<Result<Void, RegistryError>, Never>)
        case unregister(MotanURL, CheckedContinuation<Result<Void, RegistryError>, Never>)
        case switchChanged(Bool)
        case remind(generation: UInt64)
        case settle(CheckedContinuation<Void, Never>)
    }

    private let commands: AsyncStream<Command>.Continuation
    private let listenerToken: SwitchListenerToken
    private let worker: Task<Void, Never>
    private final class Counters: Sendable {
        let warnings = Atomic<Int>(0)
    }
    /// How many "switch is off" warnings were logged (for tests and diagnostics).
    private let counters = Counters()

    public init(
        switcher: Switcher = .shared, registries: [any Registry], configuration: Configuration = Configuration()
    ) {
        self.switcher = switcher
        self.registries = registries
        self.configuration = configuration
        let (stream, continuation) = AsyncStream.makeStream(of: Command.self)
        commands = continuation
        listenerToken = switcher.addListener(for: Switcher.heartbeatSwitchName) { change in
            continuation.yield(.switchChanged(change.value))
        }
        let state = WorkerState(
            switcher: switcher, registries: registries, configuration: configuration, commands: continuation,
            counters: counters)
        worker = Task {
            for await command in stream { await state.handle(command) }
        }
    }

    deinit {
        switcher.removeListener(listenerToken)
        commands.finish()
    }

    /// Switch-off warnings logged so far.
    public var warningCount: Int { counters.warnings.load(ordering: .relaxed) }

    /// Registers `url` in every registry (unavailable), then makes it available if the switch is
    /// on. Throws the first registry's error after trying them all.
    public func register(_ url: MotanURL) async throws(RegistryError) {
        let result = await withCheckedContinuation { continuation in
            if case .terminated = commands.yield(.register(url, continuation)) {
                continuation.resume(returning: .failure(.closed))
            }
        }
        try result.get()
    }

    /// Removes `url` from every registry. Throws the first registry's error after trying them all.
    public func unregister(_ url: MotanURL) async throws(RegistryError) {
        let result = await withCheckedContinuation { continuation in
            if case .terminated = commands.yield(.unregister(url, continuation)) {
                continuation.resume(returning: .failure(.closed))
            }
        }
        try result.get()
    }

    /// Returns once every registration and switch change made before the call has reached the
    /// registries.
    public func settle() async {
        await withCheckedContinuation { continuation in
            if case .terminated = commands.yield(.settle(continuation)) { continuation.resume() }
        }
    }

    /// Stops following the switch. Registries and their entries are left as they are: closing a
    /// registry unregisters what it holds.
    public func stop() async {
        switcher.removeListener(listenerToken)
        commands.finish()
        await worker.value
    }

    private actor WorkerState {
        let switcher: Switcher
        let registries: [any Registry]
        let configuration: Configuration
        let commands: AsyncStream<Command>.Continuation
        let counters: Counters
        var registered: [String: MotanURL] = [:]
        var warned = false
        var reminded = false
        var generation: UInt64 = 0
        var logger: Logger { configuration.logger }

        init(
            switcher: Switcher, registries: [any Registry], configuration: Configuration,
            commands: AsyncStream<Command>.Continuation, counters: Counters
        ) {
            self.switcher = switcher
            self.registries = registries
            self.configuration = configuration
            self.commands = commands
            self.counters = counters
        }

        func handle(_ command: Command) async {
            switch command {
            case .register(let url, let continuation):
                continuation.resume(returning: await register(url))
            case .unregister(let url, let continuation):
                registered[url.identity] = nil
                continuation.resume(
                    returning: await forEachRegistry("unregister") { registry throws(RegistryError) in
                        try await registry.unregister(url)
                    })
            case .switchChanged(let online):
                generation &+= 1
                let operation = online ? "available" : "unavailable"
                let result = await forEachRegistry(operation) { registry throws(RegistryError) in
                    if online { try await registry.available(nil) } else { try await registry.unavailable(nil) }
                }
                if case .success = result, !registered.isEmpty {
                    logger.info("\(registered.count) service(s) now \(operation) in \(registries.count) registries")
                }
            case .remind(let generation):
                guard generation == self.generation, !switcher.isOnline, !registered.isEmpty, !reminded else { return }
                reminded = true
                counters.warnings.add(1, ordering: .relaxed)
                logger.warning(
                    "\(registered.count) service(s) registered but still unavailable after \(configuration.reminderDelay!): \(Self.howToTurnOn)"
                )
            case .settle(let continuation):
                continuation.resume()
            }
        }

        static let howToTurnOn =
            "turn the switch \(Switcher.heartbeatSwitchName) on (Switcher.setOnline(true) in code, POST /online on the admin endpoint, or the `motan switch` command)"

        /// Registers in every registry; those that took it make it available when the switch is on,
        /// even if another registry failed. The first error is the result.
        private func register(_ url: MotanURL) async -> Result<Void, RegistryError> {
            var firstError: RegistryError?
            var accepted: [any Registry] = []
            for registry in registries {
                do throws(RegistryError) {
                    try await registry.register(url)
                    accepted.append(registry)
                } catch {
                    logger.warning("register \(url) in \(registry.url) failed: \(error)")
                    firstError = firstError ?? error
                }
            }
            guard !accepted.isEmpty else { return .failure(firstError ?? .closed) }
            registered[url.identity] = url
            // Read after registering: a switch turned on meanwhile is seen here, and a later change
            // queues its own command behind this one.
            if switcher.isOnline {
                logger.info("registered \(url); switch \(Switcher.heartbeatSwitchName) is on: available")
                for registry in accepted {
                    do throws(RegistryError) {
                        try await registry.available(url)
                    } catch {
                        logger.warning("available \(url) in \(registry.url) failed: \(error)")
                        firstError = firstError ?? error
                    }
                }
            } else if !warned {
                warned = true
                counters.warnings.add(1, ordering: .relaxed)
                logger.warning(
                    "registered \(url) while \(Switcher.heartbeatSwitchName) is off: the service stays unavailable to clients until you \(Self.howToTurnOn)"
                )
                warnLater()
            } else {
                logger.info("registered \(url) (unavailable until \(Switcher.heartbeatSwitchName) is on)")
            }
            return firstError.map { .failure($0) } ?? .success(())
        }

        /// Queues a reminder; it is dropped if the switch changes first.
        private func warnLater() {
            guard let delay = configuration.reminderDelay, !registered.isEmpty else { return }
            let generation = self.generation
            let commands = self.commands
            Task {
                try? await Task.sleep(for: delay)
                commands.yield(.remind(generation: generation))
            }
        }

        private func forEachRegistry(
            _ operation: String, _ body: (any Registry) async throws(RegistryError) -> Void
        ) async -> Result<Void, RegistryError> {
            var firstError: RegistryError?
            for registry in registries {
                do throws(RegistryError) {
                    try await body(registry)
                } catch {
                    logger.warning("\(operation) in \(registry.url) failed: \(error)")
                    firstError = firstError ?? error
                }
            }
            return firstError.map { .failure($0) } ?? .success(())
        }
    }
}
