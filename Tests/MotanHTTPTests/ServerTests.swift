import Foundation
import MotanHTTP
import MotanLoop
import Testing

@Suite("HTTP server over loopback")
struct ServerTests {
    static func echo(_ request: LoopHTTPRequest) -> LoopHTTPResponse {
        LoopHTTPResponse(
            status: 200, headers: ["X-Method": request.method, "X-Target": request.target], body: request.body)
    }

    @Test("binds to 127.0.0.1 unless told otherwise")
    func loopbackDefault() {
        #expect(LoopHTTPServer.Configuration().host == "127.0.0.1")
    }

    @Test("keep-alive: many requests, one connection on each side")
    func keepAliveReuse() async throws {
        let fixture = try HTTPFixture { request, responder in responder.respond(Self.echo(request)) }
        defer { fixture.shutdown() }
        for i in 0..<20 {
            let response = try await fixture.client.execute(
                LoopHTTPRequest(method: "PUT", target: "/r/\(i)", body: Array("body \(i)".utf8)), to: fixture.address)
            #expect(response.status == 200)
            #expect(response.headers["X-Target"] == "/r/\(i)")
            #expect(response.bodyText == "body \(i)")
        }
        #expect(fixture.server.acceptedCount == 1)
        #expect(fixture.clientLoop.runSync { fixture.client.connectionsOpened } == 1)
    }

    @Test("a malformed request gets 400 and its connection closes; another connection keeps working")
    func malformedIsolated() async throws {
        let fixture = try HTTPFixture { request, responder in responder.respond(Self.echo(request)) }
        defer { fixture.shutdown() }
        let good = try await RawPeer.connect(to: fixture.address, on: fixture.clientLoop)
        let bad = try await RawPeer.connect(to: fixture.address, on: fixture.clientLoop)
        await good.send("GET /before HTTP/1.1\r\n\r\n")
        await good.wait { bytes, _ in occurrences(of: "/before", in: bytes) == 1 }
        await bad.send("GET /x HTTP/1.1\r\nBroken Header\r\n\r\nGET /after-garbage HTTP/1.1\r\n\r\n")
        await bad.wait { _, closed in closed }
        #expect(bad.text.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(bad.text.contains("Connection: close"))
        #expect(!bad.text.contains("/after-garbage"))
        await good.send("GET /after HTTP/1.1\r\n\r\n")
        await good.wait { bytes, _ in occurrences(of: "/after", in: bytes) == 1 }
        #expect(good.text.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        good.close()
    }

    @Test("an oversize body gets 413 before it is read")
    func oversize() async throws {
        var configuration = LoopHTTPServer.Configuration()
        configuration.limits.maxBodyBytes = 1024
        let fixture = try HTTPFixture(configuration) { request, responder in responder.respond(Self.echo(request)) }
        defer { fixture.shutdown() }
        let response = try await fixture.client.execute(
            LoopHTTPRequest(method: "PUT", target: "/big", body: [UInt8](repeating: 65, count: 4096)),
            to: fixture.address)
        #expect(response.status == 413)
        #expect(!response.keepAlive)
        let fine = try await fixture.client.execute(
            LoopHTTPRequest(method: "PUT", target: "/small", body: [UInt8](repeating: 65, count: 1024)),
            to: fixture.address)
        #expect(fine.status == 200 && fine.body.count == 1024)
    }

    @Test("pipelined requests are answered in order, Connection: close ends the connection")
    func pipelining() async throws {
        let fixture = try HTTPFixture { request, responder in
            // Answer the first one late, so an out-of-order server would show it.
            if request.target == "/1" {
                let loop = responder.loop
                loop.scheduleTimer(after: .milliseconds(50)) { responder.respond(Self.echo(request)) }
            } else {
                responder.respond(Self.echo(request))
            }
        }
        defer { fixture.shutdown() }
        let peer = try await RawPeer.connect(to: fixture.address, on: fixture.clientLoop)
        await peer.send("GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\nConnection: close\r\n\r\n")
        await peer.wait { _, closed in closed }
        let text = peer.text
        let order = ["/1", "/2", "/3"].map { text.range(of: "X-Target: \($0)")?.lowerBound }
        #expect(order.allSatisfy { $0 != nil })
        #expect(order[0]! < order[1]! && order[1]! < order[2]!)
        #expect(text.components(separatedBy: "Connection: close").count == 2)
    }

    @Test("async handlers answer from Swift concurrency")
    func asyncHandler() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 2)
        defer { group.syncShutdown() }
        let server = try LoopHTTPServer.start(on: group) { (request: LoopHTTPRequest) async -> LoopHTTPResponse in
            try? await Task.sleep(for: .milliseconds(5))
            return LoopHTTPResponse(status: 201, text: "made \(request.target)")
        }
        defer { server.close() }
        let client = LoopHTTPClient(loop: group.loops[0])
        async let a = client.execute(LoopHTTPRequest(method: "GET", target: "/a"), to: server.address)
        async let b = client.execute(LoopHTTPRequest(method: "GET", target: "/b"), to: server.address)
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 201 && ra.bodyText == "made /a")
        #expect(rb.bodyText == "made /b")
        await client.shutdown()
    }

    @Test("closing the server ends connections, including ones waiting for an answer")
    func closeEndsConnections() async throws {
        let fixture = try HTTPFixture { _, _ in }  // never answers
        let outcome = Task { try await fixture.get("/wait", timeout: .seconds(60)) }
        while fixture.server.connectionCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        fixture.server.close()
        await #expect(throws: LoopHTTPError.self) { try await outcome.value }
        #expect(fixture.server.connectionCount == 0)
        fixture.clientLoop.runSync { fixture.client.close() }
        fixture.clientGroup.syncShutdown()
        fixture.serverGroup.syncShutdown()
    }
}
