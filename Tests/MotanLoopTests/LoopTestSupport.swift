import Dispatch
import Foundation
import MotanLoop
import Synchronization

/// Echoes every byte back; the server side of most tests.
final class EchoDelegate: TCPConnectionDelegate, @unchecked Sendable {
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        connection.write(bytes)
        connection.flush()
    }
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}

/// Collects what a client connection receives and resumes a waiter once `expected` bytes arrived.
final class CollectingDelegate: TCPConnectionDelegate, @unchecked Sendable {
    var received: [UInt8] = []
    var reads = 0
    var expected = 0
    var closeReasons: [CloseReason] = []
    var eofSeen = false
    private var waiter: CheckedContinuation<[UInt8], Never>?
    private var closeWaiter: CheckedContinuation<CloseReason, Never>?

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        reads += 1
        received.append(contentsOf: bytes)
        if received.count >= expected, let waiter {
            self.waiter = nil
            waiter.resume(returning: received)
        }
    }

    func connectionDidReadEOF(_ connection: TCPConnection) {
        eofSeen = true
        connection.close(.remoteClosed)
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        closeReasons.append(reason)
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: received)
        }
        if let closeWaiter {
            self.closeWaiter = nil
            closeWaiter.resume(returning: reason)
        }
    }

    /// Loop thread only.
    func wait(for count: Int, _ continuation: CheckedContinuation<[UInt8], Never>) {
        expected = count
        if received.count >= count {
            continuation.resume(returning: received)
        } else {
            waiter = continuation
        }
    }

    func waitForClose(_ continuation: CheckedContinuation<CloseReason, Never>) {
        if let reason = closeReasons.first {
            continuation.resume(returning: reason)
        } else {
            closeWaiter = continuation
        }
    }
}

func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

func liveHandles(_ group: UVEventLoopGroup) -> Int {
    group.loops.reduce(0) { total, loop in total + loop.runSync { loop.liveHandleCount() } }
}

/// A fixed pattern so corruption or reordering of any byte is caught.
func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var x = UInt32(seed) &* 2_654_435_761
    for i in 0..<count {
        x = x &* 1_103_515_245 &+ 12345
        out[i] = UInt8(truncatingIfNeeded: x >> 16)
    }
    return out
}

/// A plain socket bound to an ephemeral port on 127.0.0.1, outside libuv, to set up states the
/// tests need: a port that refuses, one held exclusively, or one whose accept queue is full.
struct RawSocket {
    let fd: Int32
    let port: Int

    init(listenBacklog: Int32? = nil) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if let listenBacklog { listen(fd, listenBacklog) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}

/// A port nothing listens on: bind an ephemeral one, then close it.
func closedPort() -> Int {
    let socket = RawSocket()
    socket.close()
    return socket.port
}

/// A loop group with a server on loopback (an echo server unless told otherwise).
struct ServerFixture {
    let group: UVEventLoopGroup
    let server: TCPServer

    init(
        loops: Int = 1, host: String = "127.0.0.1",
        initializer: @escaping ConnectionInitializer = { _ in EchoDelegate() }
    ) throws {
        group = UVEventLoopGroup(numberOfLoops: loops)
        do {
            server = try TCPServer.bind(host: host, port: 0, on: group, initializer: initializer)
        } catch {
            group.syncShutdown()
            throw error
        }
    }

    var loop: UVEventLoop { group.loops[0] }
    var address: TCPAddress { server.address }

    func connect(
        on loop: UVEventLoop? = nil, _ delegate: @escaping @Sendable () -> TCPConnectionDelegate
    ) async throws -> TCPConnection {
        try await TCPConnection.connect(to: address, on: loop ?? self.loop, timeout: .seconds(5), delegate: delegate)
    }

    /// Writes `bytes` and returns what `collector` holds once `count` bytes have arrived.
    func send(_ bytes: [UInt8], on connection: TCPConnection, to collector: CollectingDelegate, awaiting count: Int)
        async -> [UInt8]
    {
        await withCheckedContinuation { continuation in
            connection.loop.execute {
                collector.wait(for: count, continuation)
                connection.writeAndFlush(bytes)
            }
        }
    }

    func shutdown() {
        server.close()
        group.syncShutdown()
    }
}

/// The kernel object behind a descriptor, e.g. `socket:[41655]`: names a socket even after its number is reused.
func descriptorTarget(_ fd: Int32?) -> String {
    guard let fd else { return "closed" }
    return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? "?"
}

func openDescriptorTargets() -> Set<String> {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return Set(names.compactMap { Int32($0) }.map { descriptorTarget($0) })
}

func fdsDump() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.map {
        "\($0)->"
            + ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "?")
    }
}

/// A value shared between loop threads and the test, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
}
