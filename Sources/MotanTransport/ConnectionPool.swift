/// The fixed set of connection slots of one endpoint. Slots connect lazily, on first use, and
/// a slot whose connect failed waits `reconnectDelay` before it may try again; calls that find
/// every slot in that state fail with "no connection".
final class ConnectionPool {
    private struct Slot {
        var connection: ClientConnection?
        var retryAt: UInt64 = 0
    }

    private var slots: [Slot]
    private var cursor = 0

    init(size: Int) {
        slots = Array(repeating: Slot(), count: max(1, size))
    }

    /// A connection for a call, round robin over the slots: an open one if any, else one being
    /// connected (the call is sent once it is up), else a fresh connect. Nil when no slot may
    /// connect yet.
    func connectionForCall(
        now: UInt64, connect: (Int) -> ClientConnection
    ) -> ClientConnection? {
        let count = slots.count
        let preferred = cursor % count
        cursor &+= 1
        if let connection = slots[preferred].connection, connection.state == .open {
            return connection
        }
        // Bring the preferred slot up in the background so load spreads over every slot.
        if slots[preferred].connection == nil && slots[preferred].retryAt <= now {
            _ = open(slot: preferred, connect)
        }
        if let open = first(where: { $0.state == .open }, from: preferred) { return open }
        return first(where: { $0.state == .connecting }, from: preferred)
    }

    /// A connection for a heartbeat probe: probes ignore the reconnect delay, because finding
    /// out whether the server is back is their whole point.
    func connectionForProbe(connect: (Int) -> ClientConnection) -> ClientConnection? {
        if let open = first(where: { $0.state == .open }, from: 0) { return open }
        if let connecting = first(where: { $0.state == .connecting }, from: 0) { return connecting }
        return open(slot: 0, connect)
    }

    var openConnections: [ClientConnection] {
        slots.compactMap { $0.connection }.filter { $0.state == .open }
    }

    /// Frees the slot of a connection that closed or failed to connect.
    func release(_ connection: ClientConnection, retryAt: UInt64) {
        for index in slots.indices where slots[index].connection === connection {
            slots[index].connection = nil
            slots[index].retryAt = retryAt
        }
    }

    func removeAll() -> [ClientConnection] {
        let all = slots.compactMap { $0.connection }
        for index in slots.indices { slots[index].connection = nil }
        return all
    }

    private func open(slot index: Int, _ connect: (Int) -> ClientConnection) -> ClientConnection? {
        let connection = connect(index)
        slots[index].connection = connection
        connection.start()
        // The connect may fail synchronously and release the slot again.
        return slots[index].connection === connection ? connection : nil
    }

    private func first(
        where predicate: (ClientConnection) -> Bool, from start: Int
    ) -> ClientConnection? {
        for offset in 0..<slots.count {
            if let connection = slots[(start + offset) % slots.count].connection, predicate(connection) {
                return connection
            }
        }
        return nil
    }
}
