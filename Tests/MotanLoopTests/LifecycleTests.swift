import MotanLoop
import Synchronization
import Testing

/// libuv opens one process-wide signal pipe the first time any loop starts; it is not per loop and
/// not a leak, so start and stop one loop before counting descriptors.
private func warmUpLibUV() {
    UVEventLoopGroup(numberOfLoops: 1).syncShutdown()
}

@Suite("Handle and descriptor lifecycle")
struct LifecycleTests {
    @Test("1,000 connections opened, used and closed leave no fds and no handles")
    func thousandConnections() async throws {
        warmUpLibUV()
        let fdsBefore = openFileDescriptorCount()
        let dumpBefore = fdsDump()
        let group = UVEventLoopGroup(numberOfLoops: 2)
        // Each loop keeps its own descriptors until shutdown: epoll, eventfd, and after its first
        // listen a reserve /dev/null descriptor libuv uses to shed connections on EMFILE. Count from
        // after a first listen, then check the shutdown releases those too.
        try await TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in nil }.close()
        let fdsWithLoops = openFileDescriptorCount()
        let dumpWithLoops = fdsDump()
        let serverClosed = LockedCounter(buckets: 1)
        let sockets = Locked<Set<String>>([])
        final class CountingEcho: TCPConnectionDelegate, @unchecked Sendable {
            let closed: LockedCounter
            init(_ closed: LockedCounter) { self.closed = closed }
            func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
                connection.write(bytes)
                connection.flush()
            }
            func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
                closed.increment(0)
            }
        }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { connection in
            let socket = descriptorTarget(connection.fileDescriptor)
            sockets.withLock { _ = $0.insert(socket) }
            return CountingEcho(serverClosed)
        }
        let address = TCPAddress(host: "127.0.0.1", port: server.port)

        // 10 waves of 100 concurrent connections: each sends, gets its echo, closes.
        var echoedOK = 0
        for wave in 0..<10 {
            try await withThrowingTaskGroup(of: Int.self) { tasks in
                for i in 0..<100 {
                    tasks.addTask {
                        let loop = group.next()
                        let collector = CollectingDelegate()
                        let connection = try await TCPConnection.connect(
                            to: address, on: loop, timeout: .seconds(5)
                        ) {
                            collector
                        }
                        let socket = loop.runSync { descriptorTarget(connection.fileDescriptor) }
                        sockets.withLock { _ = $0.insert(socket) }
                        let message = Array("wave \(wave) conn \(i)".utf8)
                        let echoed: [UInt8] = await withCheckedContinuation { continuation in
                            loop.execute {
                                collector.wait(for: message.count, continuation)
                                connection.writeAndFlush(message)
                            }
                        }
                        let _: CloseReason = await withCheckedContinuation { continuation in
                            loop.execute {
                                collector.waitForClose(continuation)
                                connection.close()
                            }
                        }
                        return echoed == message ? 1 : 0
                    }
                }
                for try await ok in tasks { echoedOK += ok }
            }
        }
        #expect(echoedOK == 1000)
        await server.close()
        // Server-side closes follow the clients' FINs asynchronously; wait for all 1,000 (bounded).
        for _ in 0..<500 where serverClosed.values[0] < 1000 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(serverClosed.values[0] == 1000)
        #expect(liveHandles(group) == 0)
        // Each socket is identified by its inode, so this holds even if another test opens descriptors.
        let used = sockets.withLock { $0 }
        #expect(used.count == 2000 && used.allSatisfy { $0.hasPrefix("socket:[") })
        #expect(used.intersection(openDescriptorTargets()).isEmpty)
        // The plain count also covers descriptors of any other kind (make test runs serialized).
        #expect(openFileDescriptorCount() == fdsWithLoops, "\(dumpWithLoops) \(fdsDump())")
        group.syncShutdown()
        #expect(openFileDescriptorCount() == fdsBefore, "\(dumpBefore) \(fdsDump())")
    }

    @Test("shutting a loop down closes connections and timers it still holds")
    func shutdownClosesEverything() async throws {
        warmUpLibUV()
        let fdsBefore = openFileDescriptorCount()
        let group = UVEventLoopGroup(numberOfLoops: 1)
        let loop = group.loops[0]
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in EchoDelegate() }
        let collector = CollectingDelegate()
        _ = try await TCPConnection.connect(
            to: TCPAddress(host: "127.0.0.1", port: server.port), on: loop, timeout: .seconds(5)
        ) { collector }
        let fired = LockedCounter(buckets: 1)
        loop.runSync { _ = loop.scheduleRepeatingTimer(every: .seconds(60)) { fired.increment(0) } }
        #expect(liveHandles(group) >= 3)
        group.syncShutdown()
        #expect(collector.closeReasons == [.loopShutdown])
        #expect(fired.values == [0])
        #expect(openFileDescriptorCount() == fdsBefore)
    }
}
