import Logging
import MotanLoop
import Synchronization

/// Who changed a switch; every change is logged with it, so an operator can tell an admin
/// request from the application's own code.
public struct SwitchSource: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }

    /// The application called `Switcher.set`.
    public static let api = SwitchSource("API")
    /// The admin HTTP endpoint (`POST /online`, `/switcher/set`).
    public static let adminEndpoint = SwitchSource("admin endpoint")
    /// `motan switch` on the command line.
    public static let commandLine = SwitchSource("command line")
    /// A switch created with its default value.
    public static let initialValue = SwitchSource("default")

    public var description: String { name }
}

/// One switch changing its value.
public struct SwitchChange: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: Bool
    public var source: SwitchSource

    public init(name: String, value: Bool, source: SwitchSource) {
        self.name = name
        self.value = value
        self.source = source
    }

    public var description: String { "\(name) = \(value ? "on" : "off") (by \(source))" }
}

/// Ends one listener when handed to `Switcher.removeListener`.
public struct SwitchListenerToken: Hashable, Sendable {
    let id: UInt64
}

/// A table of named boolean switches with change listeners (spec: switcher-and-registries.md §1).
///
/// Differences from the originals, on purpose:
/// - `define` creates a switch only when it is absent and never resets one, so creating another
///   registry or component cannot silently take the process offline.
/// - Listeners hear *changes*: setting a switch to the value it already has is logged at debug
///   level and notifies no one.
/// - Every change is logged at info level with its source.
///
/// Threads: every method may be called from any thread. Changes are delivered to listeners one
/// at a time in the order they were made. A listener added with a loop runs on that loop (a later
/// turn, never inline); a listener added without one runs synchronously on the thread that made
/// the change — or, when two threads change switches at the same moment, on whichever of them is
/// already delivering, so that order is kept. A listener may itself set switches: that change is
/// delivered after the current one, never recursively.
public final class Switcher: Sendable {
    /// The "online" switch: on means this process's services are available in every registry
    /// (spec §1.1). Off until the application, an operator (`POST /online`) or `motan switch`
    /// turns it on.
    public static let heartbeatSwitchName = "feature.configserver.heartbeat"

    /// The process-wide switcher that servers, registries and the admin endpoint share.
    /// Tests and embedded uses may create their own instances instead.
    public static let shared = Switcher()

    public typealias Listener = @Sendable (SwitchChange) -> Void

    private struct Registered: Sendable {
        var name: String?
        var loop: UVEventLoop?
        var listener: Listener
    }

    private struct State: Sendable {
        var values: [String: Bool] = [:]
        var listeners: [UInt64: Registered] = [:]
        var nextListenerID: UInt64 = 0
        /// Changes waiting to be delivered, in the order they were made.
        var undelivered: [SwitchChange] = []
        var delivering = false
    }

    public let logger: Logger
    private let state = Mutex(State())

    /// A switcher holding `feature.configserver.heartbeat` = off and nothing else.
    public init(logger: Logger = Logger(label: "motan.switcher")) {
        self.logger = logger
        state.withLock { $0.values[Self.heartbeatSwitchName] = false }
    }

    // MARK: reading

    /// The switch's value; false when it does not exist.
    public func isOn(_ name: String) -> Bool {
        state.withLock { $0.values[name] ?? false }
    }

    /// Every switch and its value.
    public var all: [String: Bool] { state.withLock { $0.values } }

    /// Whether the switch exists.
    public func contains(_ name: String) -> Bool { state.withLock { $0.values[name] != nil } }

    // MARK: writing

    /// Creates the switch with `defaultValue` unless it exists; returns its value either way.
    @discardableResult
    public func define(_ name: String, default defaultValue: Bool) -> Bool {
        let (value, created) = state.withLock { state -> (Bool, Bool) in
            if let existing = state.values[name] { return (existing, false) }
            state.values[name] = defaultValue
            return (defaultValue, true)
        }
        if created { logger.debug("switch \(name) created: \(value ? "on" : "off")") }
        return value
    }

    /// Sets the switch (creating it when missing) and tells its listeners when the value changed.
    /// Returns whether it changed.
    @discardableResult
    public func set(_ name: String, _ value: Bool, source: SwitchSource = .api) -> Bool {
        let change = SwitchChange(name: name, value: value, source: source)
        let (changed, deliverHere) = state.withLock { state -> (Bool, Bool) in
            guard state.values[name] != value else { return (false, false) }
            state.values[name] = value
            state.undelivered.append(change)
            guard !state.delivering else { return (true, false) }
            state.delivering = true
            return (true, true)
        }
        guard changed else {
            logger.debug("switch \(name) already \(value ? "on" : "off"); set by \(source) ignored")
            return false
        }
        logger.info("switch \(name) turned \(value ? "on" : "off") by \(source)")
        if deliverHere { deliver() }
        return true
    }

    /// Drains the queue of changes; runs on exactly one thread at a time.
    private func deliver() {
        while true {
            let next = state.withLock { state -> (SwitchChange, [Registered])? in
                guard !state.undelivered.isEmpty else {
                    state.delivering = false
                    return nil
                }
                let change = state.undelivered.removeFirst()
                let listeners = state.listeners.sorted { $0.key < $1.key }.map(\.value)
                    .filter { $0.name == nil || $0.name == change.name }
                return (change, listeners)
            }
            guard let (change, listeners) = next else { return }
            for registered in listeners {
                if let loop = registered.loop {
                    let listener = registered.listener
                    if !loop.execute({ listener(change) }) {
                        logger.debug("switch listener's loop has shut down; \(change) not delivered to it")
                    }
                } else {
                    registered.listener(change)
                }
            }
        }
    }

    // MARK: listening

    /// Calls `listener` with every later change of the switch `name` (every switch when nil), on
    /// `loop` when given, else synchronously on the changing thread (see the type's notes).
    @discardableResult
    public func addListener(
        for name: String?, on loop: UVEventLoop? = nil, _ listener: @escaping Listener
    ) -> SwitchListenerToken {
        state.withLock { state in
            state.nextListenerID += 1
            state.listeners[state.nextListenerID] = Registered(name: name, loop: loop, listener: listener)
            return SwitchListenerToken(id: state.nextListenerID)
        }
    }

    public func removeListener(_ token: SwitchListenerToken) {
        _ = state.withLock { $0.listeners.removeValue(forKey: token.id) }
    }

    /// Every later change of `name` (every switch when nil) as a stream; ending the iteration
    /// removes the listener. Keeps the newest 256 unread changes.
    public func changes(of name: String? = nil) -> AsyncStream<SwitchChange> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: SwitchChange.self, bufferingPolicy: .bufferingNewest(256))
        let token = addListener(for: name) { continuation.yield($0) }
        continuation.onTermination = { [weak self] _ in self?.removeListener(token) }
        return stream
    }
}

extension Switcher {
    /// `feature.configserver.heartbeat`: whether this process's services are online.
    public var isOnline: Bool { isOn(Self.heartbeatSwitchName) }

    /// Turns `feature.configserver.heartbeat` on or off.
    @discardableResult
    public func setOnline(_ online: Bool, source: SwitchSource = .api) -> Bool {
        set(Self.heartbeatSwitchName, online, source: source)
    }
}
