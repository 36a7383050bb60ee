import Logging
import Synchronization

/// Polls `condition` until it holds or `timeout` passes; every wait in this suite is bounded.
public func eventually(
    timeout: Duration = .seconds(5), poll: Duration = .milliseconds(5), _ condition: () async -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: poll)
    }
    return await condition()
}

/// A thread-safe box for values tests collect from callbacks.
public final class Box<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    public init(_ value: Value) { storage = Mutex(value) }
    public var value: Value { storage.withLock { $0 } }
    public func mutate<R>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}

/// Collects the log lines of the loggers it makes, for tests that assert on warnings.
public final class LogCapture: Sendable {
    public struct Line: Sendable {
        public var level: Logger.Level
        public var message: String
    }

    public let lines = Box<[Line]>([])

    public init() {}

    public func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    public func messages(at level: Logger.Level) -> [String] {
        lines.value.filter { $0.level == level }.map(\.message)
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            capture.lines.mutate { $0.append(Line(level: event.level, message: event.message.description)) }
        }
    }
}
