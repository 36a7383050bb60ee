import MotanTransport
import NIOCore
import Testing

// This file compiling is most of the test: every name below is unqualified, with SwiftNIO's core
// module and the transport imported together, as an application built on Vapor or Hummingbird has.
@Suite("Coexistence with SwiftNIO")
struct NIOCoexistenceTests {
    @Test("transport and SwiftNIO names resolve unqualified in one file")
    func namesResolve() async throws {
        let nioBuffer = ByteBuffer(string: "nio")
        #expect(nioBuffer.readableBytes == 3)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        #expect(address.port == 1)
        #expect(System.coreCount >= 1)
        let nioLoop: (any EventLoop)? = nil
        let nioGroup: (any EventLoopGroup)? = nil
        #expect(nioLoop == nil && nioGroup == nil)

        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        var services = ServiceRegistry()
        services.handleAsync(service: "s", method: "echo") { request in
            request.arguments.first ?? .null
        }
        // The README's raw handler: checks the body, passes the first argument through.
        services.handleRaw(service: "s", method: "first") { request, responder in
            let shape: SimpleBodyShape?
            do throws(MotanCodecError) { shape = try request.checkArguments() } catch {
                return responder.respond(undecodableArguments: error)
            }
            guard let first = shape?.firstValue else { return responder.respond(passingThrough: request) }
            responder.respond(passingThrough: request, value: first)
        }
        let server = try ServerEndpoint(group: group, services: services)
        defer { server.close() }
        let client = ClientEndpoint(
            address: TCPAddress(host: "127.0.0.1", port: server.port), loop: group.next())
        defer { client.close() }
        let value = try await client.call(service: "s", method: "echo", arguments: [.string("hi")])
        #expect(value == .string("hi"))
        let first = try await client.call(service: "s", method: "first", arguments: [.string("a"), .int32(2)])
        #expect(first == .string("a"))
    }
}
