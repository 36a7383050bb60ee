import MotanLoop

/// One request in flight.
struct BenchSlot {
    /// 0 marks a free slot.
    var id: UInt64
    var sentAt: UInt64
    var intendedAt: UInt64
    var measured: Bool
}

/// A connection's fixed table of request slots in manually managed memory. A request id is a
/// generation counter above the slot index (low 16 bits), so an answer finds its slot without a
/// lookup and an answer to a timed-out request (stale generation) is recognised.
struct BenchSlotTable {
    let capacity: Int
    let slots: UnsafeMutablePointer<BenchSlot>
    private let free: UnsafeMutablePointer<Int32>
    private var freeCount: Int
    private var generation: UInt64 = 0
    /// Constant rate: this connection's schedule.
    var nextIntended: UInt64 = 0
    var interval: UInt64 = 0

    init(capacity: Int) {
        precondition(capacity >= 1 && capacity <= 1 << 16)
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: BenchSlot(id: 0, sentAt: 0, intendedAt: 0, measured: false), count: capacity)
        free = .allocate(capacity: capacity)
        for index in 0..<capacity { free[index] = Int32(capacity - 1 - index) }
        freeCount = capacity
    }

    /// Call once, before the table's memory is released.
    func deallocate() {
        slots.deallocate()
        free.deallocate()
    }

    @inline(__always)
    var inFlight: Int { capacity - freeCount }

    @inline(__always)
    mutating func acquire(sentAt: UInt64, intendedAt: UInt64, measured: Bool) -> UInt64 {
        freeCount -= 1
        let slot = Int(free[freeCount])
        generation = (generation &+ 1) & 0x7FFF_FFFF_FFFF
        let id = generation << 16 | UInt64(slot)
        slots[slot] = BenchSlot(id: id, sentAt: sentAt, intendedAt: intendedAt, measured: measured)
        return id
    }

    @inline(__always)
    mutating func release(_ slot: Int) -> BenchSlot {
        let taken = slots[slot]
        slots[slot].id = 0
        free[freeCount] = Int32(slot)
        freeCount += 1
        return taken
    }
}

/// Requests of one refill, copied side by side into the worker's staging buffer and handed to the
/// connection in one write: one queue operation per batch instead of one per request.
struct BenchWriteBatch {
    private let staging: UnsafeMutableRawBufferPointer
    private let template: UnsafeRawBufferPointer
    private var used = 0

    @inline(__always)
    init(worker: BenchWorker) {
        staging = worker.staging
        template = UnsafeRawBufferPointer(worker.request.bytes)
    }

    @inline(__always)
    mutating func append(requestID: UInt64, on connection: TCPConnection) {
        if used + template.count > staging.count {
            connection.write(UnsafeRawBufferPointer(rebasing: staging[0..<used]))
            used = 0
        }
        let at = staging.baseAddress! + used
        at.copyMemory(from: template.baseAddress!, byteCount: template.count)
        (at + BenchRequestTemplate.requestIDOffset).storeBytes(of: requestID.bigEndian, as: UInt64.self)
        used += template.count
    }

    /// Writes what is staged and flushes.
    @inline(__always)
    mutating func finish(on connection: TCPConnection) {
        guard used > 0 else { return }
        connection.write(UnsafeRawBufferPointer(rebasing: staging[0..<used]))
        used = 0
        connection.flush()
    }
}
