import CLibUV

/// A timer on one loop, owning one `uv_timer_t`. One-shot timers close their handle after firing;
/// repeating timers run until `cancel()`. A cancelled timer never fires again.
///
/// Repeating timers are fixed-rate: each tick is due at `start + n * interval`, computed from the
/// loop clock, so late callbacks do not accumulate drift; ticks missed entirely are skipped.
public final class LoopTimer: LoopHandleOwner {
    public let loop: UVEventLoop
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var callback: (() -> Void)?
    private let interval: UInt64?
    private var nextDue: UInt64
    public private(set) var isActive = true

    fileprivate init(
        loop: UVEventLoop, delay: UInt64, interval: UInt64?, callback: @escaping () -> Void
    ) {
        self.loop = loop
        self.interval = interval
        self.callback = callback
        handle = .allocate(capacity: 1)
        uv_timer_init(loop.uvLoop, handle)
        nextDue = uv_now(loop.uvLoop) + delay
        // The loop keeps the timer alive while its handle is open; released in the close callback.
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        arm(delay: delay)
    }

    private func arm(delay: UInt64) {
        uv_timer_start(
            handle,
            { handle in
                let timer = Unmanaged<LoopTimer>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                timer.fire()
            }, delay, 0)
    }

    private func fire() {
        guard isActive, let callback else { return }
        if let interval {
            let now = uv_now(loop.uvLoop)
            nextDue += interval
            if nextDue <= now {
                // Fell behind by whole periods: skip them rather than firing a burst.
                nextDue += ((now - nextDue) / interval + 1) * interval
            }
            arm(delay: nextDue - now)
            callback()
        } else {
            isActive = false
            closeHandle()
            callback()
        }
    }

    /// Stops the timer for good. Loop thread only; safe to call more than once and from the callback.
    public func cancel() {
        loop.preconditionInEventLoop()
        guard isActive else { return }
        isActive = false
        closeHandle()
    }

    private func closeHandle() {
        callback = nil
        let raw = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        uv_close(raw) { raw in
            let handle = UnsafeMutableRawPointer(raw!).assumingMemoryBound(to: uv_timer_t.self)
            Unmanaged<LoopTimer>.fromOpaque(handle.pointee.data).release()
            handle.deallocate()
        }
    }

    func closeForLoopShutdown() {
        // The sweep collects owners before closing any: an owner closed earlier in the same sweep
        // (a connection cancelling its connect timer) may have closed this one already.
        guard isActive else { return }
        isActive = false
        closeHandle()
    }
}

extension UVEventLoop {
    /// Fires `callback` once after `delay`. Loop thread only.
    @discardableResult
    public func scheduleTimer(after delay: Duration, _ callback: @escaping () -> Void) -> LoopTimer {
        preconditionInEventLoop()
        return LoopTimer(
            loop: self, delay: delay.roundedUpMilliseconds, interval: nil, callback: callback)
    }

    /// Fires `callback` every `interval`, first after `initialDelay` (default: one interval). Loop thread only.
    @discardableResult
    public func scheduleRepeatingTimer(
        every interval: Duration, initialDelay: Duration? = nil, _ callback: @escaping () -> Void
    ) -> LoopTimer {
        preconditionInEventLoop()
        let period = max(1, interval.roundedUpMilliseconds)
        return LoopTimer(
            loop: self, delay: initialDelay?.roundedUpMilliseconds ?? period, interval: period,
            callback: callback)
    }
}

extension Duration {
    /// libuv timers have millisecond resolution; round up so a timer never fires early.
    public var roundedUpMilliseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let ms = attoseconds / perMillisecond + (attoseconds % perMillisecond > 0 ? 1 : 0)
        return UInt64(seconds) * 1000 + UInt64(max(0, ms))
    }
}
