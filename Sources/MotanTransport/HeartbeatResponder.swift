import MotanCodec
import Synchronization

/// Whether a server answers heartbeats; flipped from any thread (e.g. while draining).
final class HeartbeatSwitch: Sendable {
    private let enabled: Atomic<Bool>
    init(_ enabled: Bool) { self.enabled = Atomic(enabled) }
    var isEnabled: Bool {
        get { enabled.load(ordering: .relaxed) }
        set { enabled.store(newValue, ordering: .relaxed) }
    }
}

/// Answers heartbeats on the loop, in front of the dispatcher, so a heartbeat never waits
/// behind application work and never reaches a handler. An answered heartbeat therefore proves
/// the connection and the loop are alive, not that the application has capacity.
/// Switched off, a heartbeat closes the connection (as motan-go does when its backend is down),
/// so a draining server never revives a client's endpoint.
struct HeartbeatResponder<Next: FrameHandler>: FrameHandler {
    let factory: any HeartbeatFactory
    let switchState: HeartbeatSwitch
    let next: Next
    /// The motan2 heartbeat is recognised and answered here without calls through the factory.
    private let isMotan2: Bool

    init(factory: any HeartbeatFactory, switchState: HeartbeatSwitch, next: Next) {
        self.factory = factory
        self.switchState = switchState
        self.next = next
        isMotan2 = factory is Motan2HeartbeatFactory
    }

    func handle(_ frame: FrameView, on connection: ServerConnection) -> FrameDisposition {
        let isHeartbeat =
            isMotan2 ? frame.isHeartbeat && !frame.isResponse : factory.isHeartbeatRequest(frame)
        guard isHeartbeat else {
            return next.handle(frame, on: connection)
        }
        guard switchState.isEnabled else {
            return .close("heartbeat refused: heartbeats are switched off")
        }
        if isMotan2 {
            connection.writeHeartbeatResponse(requestID: frame.requestID)
        } else {
            connection.appendEncoded { factory.encodeHeartbeatResponse(to: frame, into: &$0) }
        }
        connection.server.counters.heartbeatsAnswered.add(1, ordering: .relaxed)
        return .proceed
    }
}

/// The server's frame path, as one concrete type so that the connection calls it directly.
typealias ServerFrameChain = HeartbeatResponder<RequestDispatcher>
