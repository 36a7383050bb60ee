import Foundation
import MotanHTTP
import MotanLoop
import Synchronization

/// A value shared between loop threads and the test, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
    var value: Value { storage.withLock { $0 } }
}

/// A bare TCP client that writes whatever the test says, byte for byte, and keeps what comes back.
final class RawPeer: TCPConnectionDelegate, @unchecked Sendable {
    var received: [UInt8] = []
    var closed = false
    private var waiters:
        [(predicate: @Sendable ([UInt8], Bool) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    var connection: TCPConnection!

    static func connect(to address: TCPAddress, on loop: UVEventLoop) async throws -> RawPeer {
        let peer = RawPeer()
        peer.connection = try await TCPConnection.connect(to: address, on: loop, timeout: .seconds(5)) { peer }
        return peer
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        received.append(contentsOf: bytes)
        wake()
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        closed = true
        wake()
    }

    private func wake() {
        let ready = waiters.filter { $0.predicate(received, closed) }
        waiters.removeAll { $0.predicate(received, closed) }
        for waiter in ready { waiter.continuation.resume() }
    }

    func send(_ text: String) async {
        let bytes = Array(text.utf8)
        await withCheckedContinuation { continuation in
            connection.loop.execute {
                self.connection.writeAndFlush(bytes)
                continuation.resume()
            }
        }
    }

    /// Waits until `predicate` holds for the bytes received so far (and whether the peer closed).
    func wait(until predicate: @escaping @Sendable ([UInt8], Bool) -> Bool) async {
        await withCheckedContinuation { continuation in
            connection.loop.execute {
                if predicate(self.received, self.closed) {
                    continuation.resume()
                } else {
                    self.waiters.append((predicate, continuation))
                }
            }
        }
    }

    var text: String { connection.loop.runSync { String(decoding: self.received, as: UTF8.self) } }

    func close() { connection.loop.runSync { self.connection.close() } }
}

func occurrences(of needle: String, in bytes: [UInt8]) -> Int {
    String(decoding: bytes, as: UTF8.self).components(separatedBy: needle).count - 1
}

/// A loop group with an HTTP server; the client-side loop is a separate group.
final class HTTPFixture: @unchecked Sendable {
    let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "http-server")
    let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "http-client")
    let server: LoopHTTPServer
    let client: LoopHTTPClient

    init(
        _ configuration: LoopHTTPServer.Configuration = .init(),
        clientConfiguration: LoopHTTPClient.Configuration = .init(),
        responder: @escaping LoopHTTPServer.Handler
    ) throws {
        server = try LoopHTTPServer.start(configuration, on: serverGroup, responder: responder)
        client = LoopHTTPClient(loop: clientGroup.loops[0], configuration: clientConfiguration)
    }

    var address: TCPAddress { server.address }
    var clientLoop: UVEventLoop { clientGroup.loops[0] }

    func get(_ target: String, timeout: Duration? = nil) async throws(LoopHTTPError) -> LoopHTTPResponse {
        try await client.execute(LoopHTTPRequest(method: "GET", target: target), to: address, timeout: timeout)
    }

    func shutdown() {
        clientLoop.runSync { self.client.close() }
        server.close()
        clientGroup.syncShutdown()
        serverGroup.syncShutdown()
    }
}
