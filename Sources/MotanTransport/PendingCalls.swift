import MotanCodec

/// What a pending request is waiting for.
enum PendingKind {
    case call((Result<SimpleValue, TransportError>) -> Void)
    /// A heartbeat; the flag says whether it was a keepalive on a healthy connection.
    case heartbeat(keepalive: Bool, (Result<Void, TransportError>) -> Void)
}

struct PendingCall {
    var kind: PendingKind
    var connectionID: UInt64
    var timeoutMilliseconds: UInt64
}

/// Requests sent and not yet answered, by request id. Whoever removes an entry completes it,
/// which is what makes every call end exactly once.
struct PendingCalls {
    private var entries: [UInt64: PendingCall] = [:]

    var count: Int { entries.count }

    mutating func insert(_ call: PendingCall, id: UInt64) {
        entries[id] = call
    }

    mutating func remove(_ id: UInt64) -> PendingCall? {
        entries.removeValue(forKey: id)
    }

    /// Takes out every request sent on one connection.
    mutating func removeAll(onConnection connectionID: UInt64) -> [PendingCall] {
        var removed: [PendingCall] = []
        for (id, call) in entries where call.connectionID == connectionID {
            removed.append(call)
            entries.removeValue(forKey: id)
        }
        return removed
    }

    mutating func removeAll() -> [PendingCall] {
        let removed = Array(entries.values)
        entries.removeAll()
        return removed
    }
}
