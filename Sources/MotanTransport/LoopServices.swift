import MotanLoop

/// The client-side machinery there is exactly one of per loop: the deadline wheel and the
/// heartbeat manager. Looked up when an endpoint is created, never on the call path.
///
/// The loop keeps them while it runs and drops them when it finishes, after they have forgotten
/// every endpoint: so neither a finished loop nor the endpoints it served stay alive through them.
final class LoopServices: LoopLocal, @unchecked Sendable {
    let wheel: TimerWheel
    let heartbeats: HeartbeatManager

    private init(loop: UVEventLoop, configuration: HeartbeatManager.Configuration) {
        wheel = TimerWheel(loop: loop)
        heartbeats = HeartbeatManager(loop: loop, configuration: configuration)
    }

    /// The services of `loop`, created with `configuration` on first use; later configurations
    /// are ignored.
    static func of(
        _ loop: UVEventLoop, configuration: HeartbeatManager.Configuration = .init()
    ) -> LoopServices {
        loop.local(LoopServices.self) { LoopServices(loop: loop, configuration: configuration) }
    }

    func loopDidFinish() {
        wheel.loopDidFinish()
        heartbeats.loopDidFinish()
    }
}
