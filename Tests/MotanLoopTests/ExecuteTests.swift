import Dispatch
import Foundation
import MotanLoop
import Synchronization
import Testing

@Suite("Cross-thread execute")
struct ExecuteTests {
    @Test("8 threads x 10,000 closures each run exactly once, on the loop thread")
    func manyProducers() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let loop = group.loops[0]
        let threads = 8
        let perThread = 10_000
        // Loop-thread-only state: no lock needed if and only if every closure runs on the loop.
        final class Tally: @unchecked Sendable {
            var seen = [UInt8](repeating: 0, count: 80_000)
            var offLoop = 0
            var lastPerThread = [Int](repeating: -1, count: 8)
            var outOfOrder = 0
        }
        let tally = Tally()
        let done = DispatchSemaphore(value: 0)
        for t in 0..<threads {
            Thread.detach {
                for i in 0..<perThread {
                    loop.execute {
                        if !loop.inEventLoop { tally.offLoop += 1 }
                        tally.seen[t * perThread + i] &+= 1
                        if tally.lastPerThread[t] != i - 1 { tally.outOfOrder += 1 }
                        tally.lastPerThread[t] = i
                    }
                }
                done.signal()
            }
        }
        for _ in 0..<threads { done.wait() }
        // Everything submitted before this marker has run once the marker runs.
        let (seen, offLoop, outOfOrder) = try await loop.submit {
            (tally.seen, tally.offLoop, tally.outOfOrder)
        }
        #expect(offLoop == 0)
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(outOfOrder == 0)
        #expect(!loop.inEventLoop)
    }
}

private enum Thread {
    /// Real OS threads, so the producers truly run concurrently with each other and the loop.
    static func detach(_ body: @escaping @Sendable () -> Void) {
        Foundation.Thread.detachNewThread(body)
    }
}
