import MotanLoop
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Loop timers")
struct TimerTests {
    @Test("one-shot timers fire in due order; cancelled ones never fire")
    func orderAndCancel() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let fired = Mutex<[Int]>([])
        let all: Void = await withCheckedContinuation { continuation in
            loop.execute {
                // Scheduled out of order on purpose; equal delays keep scheduling order.
                let delays = [50, 10, 30, 10, 40, 20, 60]
                var timers: [LoopTimer] = []
                for (i, ms) in delays.enumerated() {
                    timers.append(
                        loop.scheduleTimer(after: .milliseconds(ms)) { fired.withLock { $0.append(i) } })
                }
                // Cancel two: one due soon, one due last.
                timers[1].cancel()
                timers[6].cancel()
                loop.scheduleTimer(after: .milliseconds(120)) { continuation.resume() }
            }
        }
        _ = all
        #expect(fired.withLock { $0 } == [3, 5, 2, 4, 0])
    }

    @Test("a timer cancelled from inside another timer's callback never fires")
    func cancelFromCallback() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let fired = Mutex<[String]>([])
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                let victim = loop.scheduleTimer(after: .milliseconds(20)) {
                    fired.withLock { $0.append("victim") }
                }
                loop.scheduleTimer(after: .milliseconds(5)) {
                    fired.withLock { $0.append("killer") }
                    victim.cancel()
                }
                let repeating = loop.scheduleRepeatingTimer(every: .milliseconds(5)) {
                    fired.withLock { $0.append("tick") }
                }
                loop.scheduleTimer(after: .milliseconds(12)) { repeating.cancel() }
                loop.scheduleTimer(after: .milliseconds(60)) { continuation.resume() }
            }
        }
        let names = fired.withLock { $0 }
        #expect(!names.contains("victim"))
        #expect(names.contains("killer"))
        // The repeating timer ran before its cancellation and not after.
        let ticks = names.filter { $0 == "tick" }.count
        #expect(ticks >= 1 && ticks <= 2)
        #expect(loop.runSync { loop.liveHandleCount() } == 0)
    }

    @Test("a repeating timer stays on its fixed-rate grid: drift does not accumulate")
    func repeatingDriftBounded() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let interval: UInt64 = 20
        let ticks = 30
        let times: [UInt64] = await withCheckedContinuation { continuation in
            loop.execute {
                var times: [UInt64] = []
                let start = uv_now_ms(loop)
                var timer: LoopTimer?
                timer = loop.scheduleRepeatingTimer(every: .milliseconds(Int64(interval))) {
                    times.append(uv_now_ms(loop) - start)
                    // Every callback burns 7 ms: a rate timer that re-arms from "now" would drift
                    // 7 ms per tick (over 200 ms by the end).
                    usleep(7_000)
                    if times.count == ticks {
                        timer?.cancel()
                        continuation.resume(returning: times)
                    }
                }
            }
        }
        #expect(times.count == ticks)
        for (n, t) in times.enumerated() {
            let due = UInt64(n + 1) * interval
            #expect(t >= due, "tick \(n) fired early at \(t) ms (due \(due))")
        }
        // Behavioural bound, not a speed target: re-arming from "now" would put the last tick
        // 7 ms × 29 ≈ 200 ms behind its slot; half of that is left for a loaded machine's latency.
        let lastDue = UInt64(ticks) * interval
        #expect(times.last! < lastDue + 100, "ticks: \(times)")
    }
}

private func uv_now_ms(_ loop: UVEventLoop) -> UInt64 { loop.now }
