import Dispatch
import Foundation
import MotanLoop
import Synchronization
import Testing

@Suite("Loop shutdown")
struct ShutdownTests {
    @Test("after shutdown, execute refuses, submit throws, tryRunSync gives nil, server close returns")
    func refusesAfterShutdown() async throws {
        let fixture = try ServerFixture()
        let loop = fixture.loop
        fixture.group.syncShutdown()
        #expect(loop.isShutDown)
        let ran = Locked(false)
        #expect(loop.execute { ran.withLock { $0 = true } } == false)
        await #expect(throws: LoopError.loopShutDown) { try await loop.submit { 1 } }
        #expect(loop.tryRunSync { 1 } == nil)
        // Neither form may wait for a loop that is gone.
        let closeBlocking: () -> Void = fixture.server.close
        closeBlocking()
        await fixture.server.close()
        #expect(ran.withLock { $0 } == false)
    }

    @Test("work accepted while the loop shuts down always runs: accepted == ran")
    func acceptedWorkRuns() async throws {
        for _ in 0..<20 {
            let group = UVEventLoopGroup(numberOfLoops: 1)
            let loop = group.loops[0]
            final class Shared: Sendable {
                let accepted = Atomic<Int>(0)
                let stop = Atomic<Bool>(false)
                let ran = Locked(0)
            }
            let shared = Shared()
            let producersDone = DispatchSemaphore(value: 0)
            for _ in 0..<4 {
                Foundation.Thread.detachNewThread {
                    while !shared.stop.load(ordering: .relaxed) {
                        if loop.execute({ shared.ran.withLock { $0 += 1 } }) {
                            shared.accepted.add(1, ordering: .relaxed)
                        }
                    }
                    producersDone.signal()
                }
            }
            try await Task.sleep(for: .milliseconds(5))
            group.syncShutdown()
            shared.stop.store(true, ordering: .relaxed)
            for _ in 0..<4 { producersDone.wait() }
            #expect(shared.accepted.load(ordering: .relaxed) == shared.ran.withLock { $0 })
            #expect(shared.accepted.load(ordering: .relaxed) > 0)
        }
    }

    @Test("handles opened by close callbacks during shutdown are closed too; shutdown returns")
    func handlesOpenedWhileClosing() async throws {
        // A delegate that, like a reconnecting client, arms a timer when its connection closes.
        final class Rearming: TCPConnectionDelegate, @unchecked Sendable {
            let fired = Locked(0)
            func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {}
            func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
                let loop = connection.loop
                let fired = self.fired
                loop.scheduleRepeatingTimer(every: .seconds(60)) { fired.withLock { $0 += 1 } }
                loop.execute { loop.scheduleTimer(after: .seconds(60)) {} }
            }
        }
        let fixture = try ServerFixture()
        let delegate = Rearming()
        _ = try await fixture.connect { delegate }
        let done = DispatchSemaphore(value: 0)
        let group = fixture.group
        Foundation.Thread.detachNewThread {
            group.syncShutdown()
            done.signal()
        }
        #expect(done.wait(timeout: .now() + 10) == .success, "syncShutdown did not return")
        #expect(delegate.fired.withLock { $0 } == 0)
    }
}
