import MotanLoop

/// One load connection to one target: a fixed table of request slots, request ids that name their
/// slot, and a response scanner that reads only the header fields it needs (status, request id,
/// the two size fields). Loop thread only; in steady state nothing here allocates.
final class BenchConnection: TCPConnectionDelegate {
    enum State { case idle, connecting, open, down }

    enum Outcome { case success, serverError, timeout, connection, unavailable }

    unowned let worker: BenchWorker
    let health: BenchTargetHealth
    let targetIndex: Int
    /// Position among all the run's connections, which staggers constant-rate schedules.
    var globalIndex = 0
    private(set) var state = State.idle
    private(set) var tcp: TCPConnection?
    var reconnectAt: UInt64 = 0

    let capacity: Int
    /// Pointer storage: the hot path touches it without the dynamic exclusivity checks that
    /// class properties cost on every access.
    private let table: UnsafeMutablePointer<BenchSlotTable>
    /// Closed loop: idle slots already counted as fast-failed while the target is unavailable.
    private var parked = 0

    /// Bytes of a response frame split across reads.
    private var carry: [UInt8] = []
    private static let maxFrameSection = 64 << 20

    init(worker: BenchWorker, health: BenchTargetHealth, targetIndex: Int, capacity: Int) {
        self.worker = worker
        self.health = health
        self.targetIndex = targetIndex
        self.capacity = capacity
        table = .allocate(capacity: 1)
        table.initialize(to: BenchSlotTable(capacity: capacity))
        carry.reserveCapacity(64 << 10)
    }

    deinit {
        table.pointee.deallocate()
        table.deinitialize(count: 1)
        table.deallocate()
    }

    var inFlight: Int { table.pointee.inFlight }

    /// Constant rate: the next request's intended send time, and the spacing of this connection's schedule.
    var nextIntended: UInt64 {
        get { table.pointee.nextIntended }
        set { table.pointee.nextIntended = newValue }
    }
    var interval: UInt64 {
        get { table.pointee.interval }
        set { table.pointee.interval = newValue }
    }

    // MARK: connecting

    func connect(timeout: Duration, completion: ((Result<Void, LoopError>) -> Void)? = nil) {
        state = .connecting
        TCPConnection.connect(to: health.address, on: worker.loop, timeout: timeout, delegate: self) {
            [self] result in
            switch result {
            case .success(let connection):
                tcp = connection
                carry.removeAll(keepingCapacity: true)
                if worker.isClosing {
                    connection.close()
                } else {
                    state = .open
                    worker.connectionOpened(self)
                }
                completion?(.success(()))
            case .failure(let error):
                state = .down
                let now = benchNow()
                reconnectAt = now + worker.reconnectDelay
                if !worker.isClosing {
                    worker.stats.pointee.tally.connectFailures += 1
                    health.recordFailure(.connectFailed, now: now)
                }
                completion?(.failure(error))
            }
        }
    }

    func close() {
        tcp?.close()
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        tcp = nil
        state = .down
        parked = 0
        carry.removeAll(keepingCapacity: true)
        let now = benchNow()
        reconnectAt = now + worker.reconnectDelay
        guard !worker.isClosing else { return }
        for slot in 0..<capacity where table.pointee.slots[slot].id != 0 {
            complete(slot, .connection, now: now)
            health.recordFailure(.callFailed, now: now)
        }
    }

    // MARK: sending

    /// Closed loop: fills every free slot, or counts them once as fast-failed while the target
    /// is unavailable (they wait, parked, for it to come back).
    func refill(now: UInt64) {
        guard state == .open, worker.isIssuing(now) else { return }
        if !health.isAvailable {
            let idle = capacity - inFlight - parked
            if idle > 0 {
                worker.countFastFailures(.unavailable, count: idle, now: now)
                parked += idle
            }
            return
        }
        parked = 0
        let table = self.table
        guard table.pointee.inFlight < capacity else { return }
        let stats = worker.stats
        var batch = BenchWriteBatch(worker: worker)
        while table.pointee.inFlight < capacity && stats.pointee.remaining > 0 {
            issue(intended: now, now: now, into: &batch)
        }
        batch.finish(on: tcp!)
    }

    /// Constant rate: sends every request whose intended time has come, in order. A request that
    /// finds all slots busy waits; its latency still counts from its intended time.
    func pump(now: UInt64) {
        let table = self.table
        let stats = worker.stats
        var batch = BenchWriteBatch(worker: worker)
        let stop = worker.stopAt
        let measureFrom = worker.measureFrom
        // Requests due before the next 1 ms tick leave now rather than up to a tick late: latency
        // counts from the earlier of intended and actual send, so timer granularity neither
        // inflates latency nor hides a stall.
        let horizon = now + BenchWorker.tickNanoseconds
        while table.pointee.nextIntended < horizon && table.pointee.nextIntended < stop {
            let intended = table.pointee.nextIntended
            if !health.isAvailable {
                worker.countFastFailures(.unavailable, count: 1, now: intended)
            } else if state != .open {
                worker.countFastFailures(.connection, count: 1, now: intended)
                health.recordFailure(.noConnection, now: now)
            } else if table.pointee.inFlight == capacity || stats.pointee.remaining == 0 {
                break
            } else {
                issue(intended: intended, now: now, into: &batch)
            }
            if intended >= measureFrom { stats.pointee.tally.intended += 1 }
            table.pointee.nextIntended = intended + table.pointee.interval
        }
        if let tcp { batch.finish(on: tcp) }
    }

    @inline(__always)
    private func issue(intended: UInt64, now: UInt64, into batch: inout BenchWriteBatch) {
        let counted = intended >= worker.measureFrom
        let id = table.pointee.acquire(sentAt: now, intendedAt: intended, measured: counted)
        let stats = worker.stats
        if counted { stats.pointee.tally.requests += 1 }
        stats.pointee.remaining &-= 1
        batch.append(requestID: id, on: tcp!)
    }

    /// Heartbeat ids carry the top bit, so they never match a slot.
    func probe(sequence: UInt64) {
        guard state == .open, let tcp else { return }
        tcp.write(worker.heartbeat.patch(requestID: 1 << 63 | sequence))
        tcp.flush()
    }

    @inline(__always)
    private func complete(_ slot: Int, _ outcome: Outcome, now: UInt64) {
        let released = table.pointee.release(slot)
        if released.measured {
            worker.record(outcome, latency: now &- Swift.min(released.intendedAt, released.sentAt))
        }
    }

    /// Fails every request older than the timeout.
    func expire(now: UInt64, timeout: UInt64) {
        guard inFlight > 0 else { return }
        let slots = table.pointee.slots
        for slot in 0..<capacity where slots[slot].id != 0 && now &- slots[slot].sentAt >= timeout {
            complete(slot, .timeout, now: now)
            health.recordFailure(.timeout, now: now)
        }
    }

    /// Requests still waiting, measured or not.
    var isQuiet: Bool { inFlight == 0 }

    // MARK: receiving

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        let now = benchNow()
        var input = bytes
        if !carry.isEmpty {
            // Complete the frame that began in an earlier read, taking only its own bytes.
            while true {
                let (need, known) = carry.withUnsafeBytes { Self.frameExtent($0) }
                if need < 0 { return violation(connection, "not a Motan2 frame, or an oversized one,") }
                if known && carry.count >= need {
                    let ok = carry.withUnsafeBytes { handleFrame($0, now: now) }
                    carry.removeAll(keepingCapacity: true)
                    if !ok { return violation(connection, "bad magic") }
                    break
                }
                if input.isEmpty {
                    worker.afterRead(self, now: now)
                    return
                }
                let take = Swift.min(need - carry.count, input.count)
                carry.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[..<take]))
                input = UnsafeRawBufferPointer(rebasing: input[take...])
            }
        }
        while !input.isEmpty {
            let (need, known) = Self.frameExtent(input)
            if need < 0 { return violation(connection, "not a Motan2 frame, or an oversized one,") }
            guard known, input.count >= need else { break }
            if !handleFrame(UnsafeRawBufferPointer(rebasing: input[..<need]), now: now) {
                return violation(connection, "bad magic")
            }
            input = UnsafeRawBufferPointer(rebasing: input[need...])
        }
        if !input.isEmpty { carry.append(contentsOf: input) }
        worker.afterRead(self, now: now)
    }

    private func violation(_ connection: TCPConnection, _ why: String) {
        connection.close(.protocolViolation("motan bench: \(why) in a response"))
    }

    /// How many bytes the frame at the start of `bytes` needs: the whole frame once both size
    /// fields are in (`known`), otherwise enough to read the next size field; -1 if a size is absurd.
    @inline(__always)
    static func frameExtent(_ bytes: UnsafeRawBufferPointer) -> (Int, Bool) {
        if bytes.count >= 2 && (bytes[0] != 0xF1 || bytes[1] != 0xF1) { return (-1, false) }
        guard bytes.count >= 17 else { return (17, false) }
        let meta = readSize(bytes, at: 13)
        if meta > maxFrameSection { return (-1, false) }
        guard bytes.count >= 21 + meta else { return (21 + meta, false) }
        let body = readSize(bytes, at: 17 + meta)
        if body > maxFrameSection { return (-1, false) }
        return (21 + meta + body, true)
    }

    @inline(__always)
    static func readSize(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        Int(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// False for bytes that are not a Motan2 frame.
    @inline(__always)
    private func handleFrame(_ frame: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        guard frame[0] == 0xF1, frame[1] == 0xF1 else { return false }
        let flags = frame[2]
        let status = frame[3] & 0x07
        let id = UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: 5, as: UInt64.self))
        if flags & 0x10 != 0 {
            if flags & 0x01 != 0 { health.recordSuccess(now: now, how: "heartbeat") }
            return true
        }
        let slot = Int(truncatingIfNeeded: id & 0xFFFF)
        guard id & (1 << 63) == 0, slot < capacity, table.pointee.slots[slot].id == id else {
            // The answer to a request that already timed out.
            worker.stats.pointee.tally.lateResponses += 1
            return true
        }
        complete(slot, status == 0 ? .success : .serverError, now: now)
        worker.stats.pointee.answered &+= 1
        health.recordSuccess(now: now, how: "request")
        return true
    }
}
