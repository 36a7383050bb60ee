import Foundation
import MotanCodec
import MotanLoop
import MotanTestSupport
import Synchronization
import Testing

@testable import MotanTransport

enum TestService {
    static let name = "test.EchoService"
}

/// Services the in-process tests run against. `calls` counts every handler invocation.
final class TestServer: @unchecked Sendable {
    let group: UVEventLoopGroup
    let server: ServerEndpoint
    let calls = Box(0)
    /// Responders of `hold` requests, answered by `releaseHeld()`.
    let held = Box<[PendingResponse]>([])

    init(
        loops: Int = 1, configuration: ServerEndpoint.Configuration = .init()
    ) throws {
        group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "test-server")
        var registry = ServiceRegistry()
        let calls = self.calls
        let held = self.held
        registry.handleRaw(service: TestService.name, method: "echo") { request, responder in
            calls.mutate { $0 += 1 }
            responder.respond(passingThrough: request)
        }
        registry.handle(service: TestService.name, method: "args") { request, responder in
            calls.mutate { $0 += 1 }
            responder.respond(.array(request.arguments))
        }
        registry.handle(service: TestService.name, method: "hold") { _, responder in
            calls.mutate { $0 += 1 }
            let pending = responder.detach()
            held.mutate { $0.append(pending) }
        }
        registry.handle(service: TestService.name, method: "businessError") { _, responder in
            calls.mutate { $0 += 1 }
            responder.fail(MotanErrorInfo(errcode: 30001, errmsg: "business says no", errtype: 2))
        }
        registry.handleAsync(service: TestService.name, method: "echoAsync") { request in
            calls.mutate { $0 += 1 }
            return request.arguments.first ?? .null
        }
        registry.handleAsync(service: TestService.name, method: "throw") { request in
            calls.mutate { $0 += 1 }
            throw DemoFailure(message: request.arguments.first?.stringValue ?? "failed")
        }
        registry.handleAsync(service: TestService.name, method: "sleep") { request in
            calls.mutate { $0 += 1 }
            let ms = request.arguments.first?.integerValue ?? 0
            try await Task.sleep(for: .milliseconds(ms))
            return .int64(ms)
        }
        server = try ServerEndpoint(group: group, services: registry, configuration: configuration)
    }

    var port: Int { server.port }
    var address: TCPAddress { TCPAddress(host: "127.0.0.1", port: port) }

    /// A loop for raw peers of this server, shut down before it.
    private let peerGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "test-peer")

    func connectPeer() async throws -> BytePeer {
        try await BytePeer.connect(to: address, on: peerGroup.loops[0])
    }

    func releaseHeld() {
        let responders = held.mutate { all -> [PendingResponse] in
            defer { all.removeAll() }
            return all
        }
        for responder in responders { responder.complete(with: .success("released")) }
    }

    func shutdown() {
        peerGroup.syncShutdown()
        server.close()
        group.syncShutdown()
        // Held responders reach the registry's handlers, which hold `held`: break the cycle.
        held.mutate { $0.removeAll() }
    }
}

struct DemoFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

func requestFrame(
    id: UInt64, service: String = TestService.name, method: String = "echo",
    arguments: [SimpleValue] = ["hi"], flags: MessageFlags = []
) -> Frame {
    var frame = Frame.request(requestID: id, service: service, method: method, arguments: arguments)
    frame.header.flags.formUnion(flags)
    return frame
}

/// A listener that accepts and never reads or answers: a black hole for keepalive tests.
final class BlackHoleServer: TCPConnectionDelegate, @unchecked Sendable {
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "black-hole")
    private(set) var server: TCPServer!
    let accepted = Box(0)

    init() throws {
        let accepted = self.accepted
        server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { connection in
            accepted.mutate { $0 += 1 }
            return self
        }
    }

    var address: TCPAddress { TCPAddress(host: "127.0.0.1", port: server.port) }
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {}
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}

    func shutdown() {
        server.close()
        group.syncShutdown()
    }
}
