import MotanLoop
import Synchronization

/// The client-side machinery there is exactly one of per loop: the deadline wheel and the
/// heartbeat manager. Looked up when an endpoint is created, never on the call path.
final class LoopServices: @unchecked Sendable {
    let wheel: TimerWheel
    let heartbeats: HeartbeatManager

    private init(loop: UVEventLoop, configuration: HeartbeatManager.Configuration) {
        wheel = TimerWheel(loop: loop)
        heartbeats = HeartbeatManager(loop: loop, configuration: configuration)
    }

    private struct Registration: @unchecked Sendable {
        weak var loop: UVEventLoop?
        let services: LoopServices
    }

    private static let table = Mutex<[ObjectIdentifier: Registration]>([:])

    /// The services of `loop`, created with `configuration` on first use; later configurations
    /// are ignored.
    static func of(
        _ loop: UVEventLoop, configuration: HeartbeatManager.Configuration = .init()
    ) -> LoopServices {
        table.withLock { table in
            let key = ObjectIdentifier(loop)
            if let existing = table[key], existing.loop === loop { return existing.services }
            // Forget loops that are gone so their identifiers can be reused safely.
            table = table.filter { $0.value.loop != nil }
            let services = LoopServices(loop: loop, configuration: configuration)
            table[key] = Registration(loop: loop, services: services)
            return services
        }
    }
}
