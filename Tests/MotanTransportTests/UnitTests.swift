import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

@Suite("Availability tracker")
struct AvailabilityTrackerTests {
    @Test("weights: +1 call or timeout, +2 connect, +3 no connection; success resets")
    func weights() {
        var tracker = AvailabilityTracker(threshold: 10, now: 0)
        #expect(tracker.record(.noConnection, now: 1) == nil)
        #expect(tracker.record(.connectFailed, now: 2) == nil)
        #expect(tracker.record(.timeout, now: 3) == nil)
        #expect(tracker.record(.callFailed, now: 4) == nil)
        #expect(tracker.errorCount == 7)
        #expect(tracker.recordSuccess(now: 5) == nil)
        #expect(tracker.errorCount == 0)
        for time in 0..<9 { #expect(tracker.record(.callFailed, now: UInt64(10 + time)) == nil) }
        #expect(tracker.isAvailable)
        #expect(tracker.record(.timeout, now: 100) == .becameUnavailable(after: 100))
        #expect(!tracker.isAvailable)
        // Further failures do not report the same transition twice.
        #expect(tracker.record(.noConnection, now: 110) == nil)
        #expect(tracker.recordSuccess(now: 150) == .becameAvailable(after: 50))
        #expect(tracker.isAvailable && tracker.errorCount == 0)
    }

    @Test("a threshold of zero never fuses; a forced failure always does")
    func disabledAndForced() {
        var tracker = AvailabilityTracker(threshold: 0, now: 0)
        for _ in 0..<100 { #expect(tracker.record(.noConnection, now: 1) == nil) }
        #expect(tracker.isAvailable)
        #expect(tracker.forceUnavailable(now: 2) == .becameUnavailable(after: 2))
        #expect(tracker.forceUnavailable(now: 3) == nil)
    }
}

final class WheelRecorder: TimerWheelTarget {
    var fired: [(key: UInt64, at: UInt64)] = []
    let loop: UVEventLoop
    init(loop: UVEventLoop) { self.loop = loop }
    func timerWheelExpired(key: UInt64) { fired.append((key, loop.now)) }
}

@Suite("Timer wheel")
struct TimerWheelTests {
    @Test("deadlines fire once, never early, and the wheel's timer stops when it is empty")
    func firesAndStops() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "wheel")
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let wheel = TimerWheel(loop: loop, tickMilliseconds: 5, slotCount: 8)
        let recorder = loop.runSync { WheelRecorder(loop: loop) }
        let deadlines = Box<[UInt64: UInt64]>([:])
        loop.runSync {
            // 8 slots of 5 ms: the 90 ms deadline goes round the wheel more than twice.
            for (key, delay) in [(1, 7), (2, 30), (3, 90), (4, 1)] as [(UInt64, UInt64)] {
                let deadline = loop.now + delay
                deadlines.mutate { $0[key] = deadline }
                wheel.schedule(deadline: deadline, key: key, target: recorder)
            }
        }
        #expect(loop.runSync { wheel.isTimerRunning })
        #expect(await eventually { loop.runSync { recorder.fired.count } == 4 })
        let fired = loop.runSync { recorder.fired }
        #expect(fired.map(\.key).sorted() == [1, 2, 3, 4])
        for entry in fired { #expect(entry.at >= deadlines.value[entry.key]!) }
        #expect(await eventually { !loop.runSync { wheel.isTimerRunning } })
        #expect(loop.runSync { wheel.count } == 0)
    }
}

@Suite("Heartbeat backoff")
struct BackoffTests {
    @Test("probe delays grow by the multiplier up to the cap, within the jitter band")
    func backoff() {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "backoff")
        defer { group.syncShutdown() }
        let manager = HeartbeatManager(
            loop: group.loops[0],
            configuration: .init(
                period: .milliseconds(100), backoffMultiplier: 2, maxBackoff: .seconds(1), jitter: 0.2))
        let expected: [Double] = [100, 200, 400, 800, 1000, 1000]
        for (index, base) in expected.enumerated() {
            for _ in 0..<20 {
                let delay = Double(manager.delay(afterFailures: index + 1))
                #expect(delay >= base * 0.8 - 1 && delay <= base * 1.2 + 1, "failure \(index + 1): \(delay)")
            }
        }
        let steady = HeartbeatManager(
            loop: group.loops[0], configuration: .init(period: .milliseconds(100), backoffMultiplier: 1, jitter: 0))
        #expect(steady.delay(afterFailures: 10) == 100)
    }
}
