import MotanLoop
import MotanTestSupport
import Synchronization
import Testing

@testable import MotanZooKeeper

/// A loopback server that answers each read of a connection with `answer(readIndex, bytes)`.
final class ScriptedPeer: TCPConnectionDelegate {
    let answer: @Sendable (Int, [UInt8]) -> [UInt8]?
    private var reads = 0
    init(answer: @escaping @Sendable (Int, [UInt8]) -> [UInt8]?) { self.answer = answer }
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        defer { reads += 1 }
        if let reply = answer(reads, Array(bytes)) { connection.writeAndFlush(reply) }
    }
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}

func framed(_ build: (inout JuteWriter) -> Void) -> [UInt8] {
    var w = JuteWriter()
    build(&w)
    return w.framed
}

let validConnectResponse = framed {
    $0.int(0)
    $0.int(2000)
    $0.long(0x1234)
    $0.buffer([UInt8](repeating: 7, count: 16))
    $0.bool(false)
}

@Suite("ZooKeeper client against misbehaving servers", .serialized)
struct MisbehavingServerTests {
    private func withPeer(
        _ answer: @escaping @Sendable (Int, [UInt8]) -> [UInt8]?,
        _ body: (ZooKeeperClient) async throws -> Void
    ) async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "zk-peer")
        defer { group.syncShutdown() }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in ScriptedPeer(answer: answer) }
        defer { server.close() }
        let rig = TestLoop()
        defer { rig.shutdown() }
        var configuration = ZooKeeperClient.Configuration()
        configuration.sessionTimeout = .seconds(2)
        configuration.maxReconnectDelay = .milliseconds(50)
        configuration.closeTimeout = .milliseconds(200)
        let client = try ZooKeeperClient(
            connectString: "127.0.0.1:\(server.port)", loop: rig.loop, configuration: configuration)
        try await body(client)
        await client.close()
    }

    @Test("an oversized packet length drops the connection; the request fails with connectionLoss")
    func oversizedPacket() async throws {
        try await withPeer({ _, _ in [0x7F, 0xFF, 0xFF, 0xFF, 0] }) { client in
            await #expect(throws: ZooKeeperError.connectionLoss) { try await client.exists("/a") }
            #expect(!client.isConnected)
        }
    }

    @Test("a reply for an unknown xid drops the connection; the in-flight request fails")
    func unexpectedXid() async throws {
        try await withPeer({ index, _ in
            index == 0
                ? validConnectResponse
                : framed {
                    $0.int(999)
                    $0.long(1)
                    $0.int(0)
                }
        }) { client in
            try await client.waitUntilConnected()
            #expect(client.session?.id == 0x1234)
            await #expect(throws: ZooKeeperError.connectionLoss) { try await client.getData("/a") }
        }
    }

    @Test("a truncated reply body is a marshalling problem: the request fails, nothing crashes")
    func truncatedReply() async throws {
        try await withPeer({ index, bytes in
            guard index > 0 else { return validConnectResponse }
            // Echo the request's xid with err 0 and a body far too short for a Stat.
            return framed {
                $0.raw(Array(bytes[4..<8]))
                $0.long(5)
                $0.int(0)
                $0.int(1)
            }
        }) { client in
            try await client.waitUntilConnected()
            await #expect(throws: ZooKeeperError.marshallingError) { try await client.exists("/a") }
        }
    }

    @Test("a server that never answers the handshake: the request ends within the attempt time")
    func silentServer() async throws {
        try await withPeer({ _, _ in nil }) { client in
            await #expect(throws: ZooKeeperError.connectionLoss) { try await client.exists("/a") }
        }
    }

    @Test("an expired session answer: a new session is started at once")
    func expiredAnswer() async throws {
        let answers = Mutex(0)
        try await withPeer({ index, _ in
            guard index == 0 else { return nil }
            let n = answers.withLock {
                $0 += 1
                return $0
            }
            return n == 1
                ? framed {
                    $0.int(0)
                    $0.int(0)
                    $0.long(0)
                    $0.buffer([UInt8](repeating: 0, count: 16))
                    $0.bool(false)
                } : validConnectResponse
        }) { client in
            try await client.waitUntilConnected()
            #expect(client.session?.id == 0x1234)
        }
    }
}

@Suite("ZooKeeper client and its loop")
struct ClientLoopTests {
    @Test("a loop shut down under a connecting client ends its waiters and requests")
    func loopShutdownUnderClient() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "zk-peer")
        defer { group.syncShutdown() }
        // Accepts and never answers: the client stays in its handshake.
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in ScriptedPeer { _, _ in nil } }
        defer { server.close() }
        let rig = TestLoop()
        var configuration = ZooKeeperClient.Configuration()
        configuration.sessionTimeout = .seconds(30)
        let client = try ZooKeeperClient(
            connectString: "127.0.0.1:\(server.port)", loop: rig.loop, configuration: configuration)
        let outcomes = Box<[String]>([])
        let waiter = Task {
            do {
                try await client.waitUntilConnected(timeout: .seconds(60))
                outcomes.mutate { $0.append("connected") }
            } catch {
                outcomes.mutate { $0.append("\(error)") }
            }
        }
        let request = Task {
            do {
                _ = try await client.exists("/")
                outcomes.mutate { $0.append("reply") }
            } catch {
                outcomes.mutate { $0.append("\(error)") }
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        rig.shutdown()
        #expect(await eventually { outcomes.value.count == 2 })
        #expect(outcomes.value.allSatisfy { $0 == "\(ZooKeeperError.closed)" }, "\(outcomes.value)")
        waiter.cancel()
        request.cancel()
        await #expect(throws: ZooKeeperError.closed) { try await client.exists("/") }
    }
}
