import MotanHTTP
import MotanLoop
import Testing

@Suite("HTTP client over loopback")
struct ClientTests {
    @Test("chunked and until-close response bodies")
    func responseFraming() async throws {
        let fixture = try HTTPFixture { request, responder in
            var response = LoopHTTPResponse(status: 200, text: String(repeating: "x", count: 10_000))
            if request.target == "/chunked" { response.headers.set("Transfer-Encoding", "chunked") }
            responder.respond(response)
        }
        defer { fixture.shutdown() }
        let chunked = try await fixture.get("/chunked")
        #expect(chunked.body.count == 10_000)
        #expect(chunked.headers["Transfer-Encoding"] == "chunked")
        let plain = try await fixture.get("/plain")
        #expect(plain.body.count == 10_000)
        #expect(fixture.clientLoop.runSync { fixture.client.connectionsOpened } == 1)
    }

    @Test("a timeout fires exactly once, and a late answer changes nothing")
    func timeoutOnce() async throws {
        let held = Locked<[LoopHTTPResponder]>([])
        let fixture = try HTTPFixture { request, responder in
            if request.path == "/slow" {
                held.withLock { $0.append(responder) }
            } else {
                responder.respond(LoopHTTPResponse(status: 200))
            }
        }
        defer { fixture.shutdown() }
        let outcomes = Locked<[Result<LoopHTTPResponse, LoopHTTPError>]>([])
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            fixture.clientLoop.execute {
                fixture.client.execute(
                    LoopHTTPRequest(method: "GET", target: "/slow"), to: fixture.address, timeout: .milliseconds(100)
                ) { result in
                    outcomes.withLock { $0.append(result) }
                    continuation.resume()
                }
            }
        }
        // Answer now, after the deadline; the client must not report a second outcome.
        while held.value.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        held.value[0].respond(LoopHTTPResponse(status: 200, text: "late"))
        #expect(try await fixture.get("/next").status == 200)  // a full round trip after the late answer
        let recorded = outcomes.value
        #expect(recorded.count == 1)
        if case .failure(.timedOut(let ms)) = recorded.first {
            #expect(ms == 100)
        } else {
            Issue.record("expected a timeout, got \(String(describing: recorded.first))")
        }
    }

    @Test("a long poll waits on the loop while short requests on the same loop complete")
    func longPollBesideShortRequests() async throws {
        let held = Locked<LoopHTTPResponder?>(nil)
        let fixture = try HTTPFixture { request, responder in
            if request.path == "/poll" {
                held.withLock { $0 = responder }
            } else {
                responder.respond(LoopHTTPResponse(status: 200, text: "quick"))
            }
        }
        defer { fixture.shutdown() }
        let pollDone = Locked(false)
        let poll = Task {
            let response = try await fixture.get("/poll?index=5&wait=540s", timeout: .seconds(600))
            pollDone.withLock { $0 = true }
            return response
        }
        while held.value == nil { try await Task.sleep(for: .milliseconds(5)) }
        for _ in 0..<50 {
            #expect(try await fixture.get("/quick").bodyText == "quick")
        }
        #expect(!pollDone.value)
        // One connection for the poll, one reused for every short request.
        #expect(fixture.clientLoop.runSync { fixture.client.connectionsOpened } == 2)
        held.value?.respond(LoopHTTPResponse(status: 200, text: "changed"))
        #expect(try await poll.value.bodyText == "changed")
    }

    @Test("a refused connection fails once with connectFailed")
    func refused() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1)
        defer { group.syncShutdown() }
        let client = LoopHTTPClient(loop: group.loops[0])
        // A server started and closed again leaves a port nothing listens on.
        let probe = try LoopHTTPServer.start(on: group) { _ in LoopHTTPResponse(status: 200) }
        let address = probe.address
        probe.close()
        await #expect {
            _ = try await client.execute(LoopHTTPRequest(method: "GET", target: "/"), to: address)
        } throws: { error in
            if case .connectFailed = error as? LoopHTTPError { return true }
            return false
        }
        await client.shutdown()
    }

    @Test("a kept-alive connection the server dropped is replaced without failing the request")
    func staleConnection() async throws {
        var configuration = LoopHTTPServer.Configuration()
        configuration.idleTimeout = .milliseconds(50)
        let fixture = try HTTPFixture(configuration) { _, responder in responder.respond(LoopHTTPResponse(status: 204))
        }
        defer { fixture.shutdown() }
        #expect(try await fixture.get("/1").status == 204)
        while fixture.server.connectionCount > 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await fixture.get("/2").status == 204)
        #expect(fixture.clientLoop.runSync { fixture.client.connectionsOpened } == 2)
    }

    @Test("closing the client fails what is pending, once each")
    func closeFailsPending() async throws {
        let fixture = try HTTPFixture { _, _ in }
        defer { fixture.shutdown() }
        let pending = (0..<3).map { i in Task { try await fixture.get("/p\(i)", timeout: .seconds(60)) } }
        while fixture.server.connectionCount < 3 { try await Task.sleep(for: .milliseconds(5)) }
        await fixture.client.shutdown()
        for task in pending {
            await #expect(throws: LoopHTTPError.clientClosed) { try await task.value }
        }
        await #expect(throws: LoopHTTPError.clientClosed) { try await fixture.get("/after") }
    }
}

@Suite("HTTP client cancellation")
struct ClientCancellationTests {
    @Test("cancelling the task ends a waiting request with cancelled and frees its connection")
    func cancelTask() async throws {
        let fixture = try HTTPFixture { _, _ in }  // never answers
        defer { fixture.shutdown() }
        let poll = Task { try await fixture.get("/poll", timeout: .seconds(600)) }
        while fixture.server.connectionCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
        poll.cancel()
        await #expect(throws: LoopHTTPError.cancelled) { try await poll.value }
        while fixture.server.connectionCount > 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(fixture.clientLoop.runSync { fixture.client.openConnections } == 0)
    }

    @Test("a handle cancels from the loop callback form; a finished request ignores it")
    func cancelHandle() async throws {
        let fixture = try HTTPFixture { request, responder in
            if request.path == "/quick" { responder.respond(LoopHTTPResponse(status: 200)) }
        }
        defer { fixture.shutdown() }
        let outcomes = Locked<[String: [Result<LoopHTTPResponse, LoopHTTPError>]]>([:])
        let handles = fixture.clientLoop.runSync {
            ["/quick", "/slow"].map { target in
                fixture.client.execute(LoopHTTPRequest(method: "GET", target: target), to: fixture.address) { result in
                    outcomes.withLock { $0[target, default: []].append(result) }
                }
            }
        }
        #expect(await eventually { outcomes.value["/quick"]?.count == 1 })
        for handle in handles { handle.cancel() }
        #expect(await eventually { outcomes.value["/slow"]?.count == 1 })
        #expect(try outcomes.value["/quick"]?.first?.get().status == 200)
        if case .failure(.cancelled) = outcomes.value["/slow"]?.first {
        } else {
            Issue.record("expected cancelled, got \(String(describing: outcomes.value["/slow"]))")
        }
        #expect(try await fixture.get("/quick").status == 200)
        #expect(outcomes.value.values.map(\.count) == [1, 1])
    }
}

func eventually(_ condition: () async throws -> Bool) async rethrows -> Bool {
    for _ in 0..<3000 {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}
