import MotanLoop

/// Something that owns deadlines on a timer wheel.
protocol TimerWheelTarget: AnyObject {
    /// The deadline registered under `key` has passed. Keys whose work already finished are
    /// ignored by the target: entries are never cancelled, only dropped when they come due.
    func timerWheelExpired(key: UInt64)
}

/// Request deadlines for every endpoint of one loop, on one libuv timer instead of one per
/// request. A hashed wheel: an entry sits in the slot of the tick it is due in, so inserting is
/// O(1) and each tick looks at one slot. The timer runs only while entries are waiting.
///
/// Cancellation is lazy (a finished call leaves its entry until it comes due), which keeps
/// completion free of bookkeeping; the target checks whether the key still means anything.
final class TimerWheel {
    private struct Entry {
        var deadline: UInt64
        var key: UInt64
        var target: TimerWheelTarget
    }

    let loop: UVEventLoop
    /// Resolution: deadlines fire up to one tick late, never early.
    let tickMilliseconds: UInt64
    private var slots: [[Entry]]
    private var scratch: [Entry] = []
    private var due: [Entry] = []
    /// The last tick whose slot has been looked at.
    private var processedTick: UInt64 = 0
    private(set) var count = 0
    private var timer: LoopTimer?

    init(loop: UVEventLoop, tickMilliseconds: UInt64 = 10, slotCount: Int = 512) {
        precondition(tickMilliseconds > 0 && slotCount > 0)
        self.loop = loop
        self.tickMilliseconds = tickMilliseconds
        slots = Array(repeating: [], count: slotCount)
    }

    var isTimerRunning: Bool { timer != nil }

    /// Calls `target.timerWheelExpired(key:)` once the loop clock reaches `deadline` (loop ms).
    func schedule(deadline: UInt64, key: UInt64, target: TimerWheelTarget) {
        loop.preconditionInEventLoop()
        if timer == nil {
            processedTick = loop.now / tickMilliseconds
            timer = loop.scheduleRepeatingTimer(every: .milliseconds(Int64(tickMilliseconds))) {
                [unowned self] in
                self.advance()
            }
        }
        let tick = max((deadline + tickMilliseconds - 1) / tickMilliseconds, processedTick + 1)
        slots[Int(tick % UInt64(slots.count))].append(
            Entry(deadline: deadline, key: key, target: target))
        count += 1
    }

    private func advance() {
        let now = loop.now
        let nowTick = now / tickMilliseconds
        // After a stall longer than a full turn every slot is visited once, not once per tick.
        if nowTick > processedTick + UInt64(slots.count) {
            processedTick = nowTick - UInt64(slots.count)
        }
        while processedTick < nowTick {
            processedTick += 1
            expire(slot: Int(processedTick % UInt64(slots.count)), now: now)
        }
        // Expiries run after the slots are settled, because they may schedule new deadlines.
        for entry in due { entry.target.timerWheelExpired(key: entry.key) }
        due.removeAll(keepingCapacity: true)
        if count == 0 {
            timer?.cancel()
            timer = nil
        }
    }

    /// The loop has finished: no deadline can fire any more, and the entries would keep their
    /// targets (and through them the loop) alive.
    func loopDidFinish() {
        for index in slots.indices { slots[index] = [] }
        due = []
        count = 0
        timer = nil
    }

    private func expire(slot index: Int, now: UInt64) {
        guard !slots[index].isEmpty else { return }
        swap(&scratch, &slots[index])
        for entry in scratch {
            if entry.deadline <= now {
                due.append(entry)
                count -= 1
            } else {
                slots[index].append(entry)
            }
        }
        scratch.removeAll(keepingCapacity: true)
    }
}
