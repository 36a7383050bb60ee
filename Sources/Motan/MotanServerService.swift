import MotanRegistry
import ServiceLifecycle

/// A `MotanServer` as a swift-service-lifecycle service: `run()` starts it and serves until the
/// service group shuts down gracefully (SIGTERM or SIGINT when the group is configured for them),
/// then drains it as `MotanServer.shutdown()` describes, so a ServiceGroup's graceful shutdown
/// never drops a call in flight.
public struct MotanServerService: Service {
    public let server: MotanServer
    private let onStarted: @Sendable (MotanServer) -> Void

    /// `onStarted` runs once the server listens and its services are registered.
    public init(server: MotanServer, onStarted: @escaping @Sendable (MotanServer) -> Void = { _ in }) {
        self.server = server
        self.onStarted = onStarted
    }

    public func run() async throws {
        try await server.start()
        onStarted(server)
        // Returns when graceful shutdown begins; throws if the task is cancelled instead, and the
        // drain still runs, because an abandoned server would drop its calls.
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
