import Foundation
import MotanCodec
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

#if canImport(Glibc)
    import Glibc
#endif

private let service = "test.Hardening"
private let demo = "com.weibo.motan.demo.service.MotanDemoService"

@Suite("Server hardening", .serialized)
struct ServerHardeningTests {
    // A second answer through `Responder` does not compile ("'responder' consumed more than
    // once"); through a detached `PendingResponse` it is a logged, counted no-op.
    @Test("a second answer is a counted no-op: one frame per id, the in-flight limit still holds")
    func secondAnswerIgnored() async throws {
        let fixture = try ServerFixture(configuration: .init(maxInFlightPerConnection: 1)) { registry in
            registry.handle(service: service, method: "twice") { _, responder in
                let pending = responder.detach()
                pending.respond("one")
                pending.respond("two")
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "twice"))
        peer.send(requestFrame(id: 2, service: service, method: "twice"))
        peer.send(requestFrame(id: 3, service: service, method: "twice"))
        _ = await peer.response(to: 3)
        #expect(peer.responses(to: 1).count == 1)
        #expect(try peer.responses(to: 1).first?.decodedValues() == ["one"])
        #expect(fixture.server.statistics.rejected == 0)
        #expect(fixture.server.statistics.duplicateAnswers == 3)
        #expect(await eventually { fixture.server.statistics.inFlight == 0 })
    }

    @Test("a responder dropped unanswered answers an error itself and frees its slot")
    func droppedResponderAnswers() async throws {
        let fixture = try ServerFixture(configuration: .init(maxInFlightPerConnection: 1)) { registry in
            registry.handle(service: service, method: "drop") { _, _ in }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "drop"))
        peer.send(requestFrame(id: 2, service: service, method: "drop"))
        let first = try #require(await peer.response(to: 1))
        #expect(first.errorInfo?.errcode == 500)
        #expect(first.errorInfo?.errtype == MotanErrorInfo.serviceType)
        let second = try #require(await peer.response(to: 2))
        #expect(second.errorInfo?.errcode == 500)
        #expect(fixture.server.statistics.rejected == 0)
        #expect(fixture.server.statistics.droppedAnswers == 2)
    }

    @Test("a detached response released unanswered answers an error itself")
    func droppedPendingResponseAnswers() async throws {
        let fixture = try ServerFixture(configuration: .init(maxInFlightPerConnection: 1)) { registry in
            registry.handle(service: service, method: "dropLater") { _, responder in
                let pending = responder.detach()
                Task { _ = pending.requestID }
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "dropLater"))
        #expect(await peer.response(to: 1)?.errorInfo?.errcode == 500)
        // The slot is free again once the answer is out.
        peer.send(requestFrame(id: 2, service: service, method: "dropLater"))
        #expect(await peer.response(to: 2)?.errorInfo?.errcode == 500)
        #expect(fixture.server.statistics.rejected == 0)
        #expect(await eventually { fixture.server.statistics.inFlight == 0 })
    }

    @Test("the demo echo answers the first argument as it came: plain, several, none, gzipped")
    func demoEchoAnswers() async throws {
        let served = try await DemoServePeer()
        defer { served.close() }
        let peer = served.peer
        let nested: SimpleValue = .map([SimplePair(.string("k"), .array([.int32(-7), .float64(2.5), .null]))])
        let cases: [(body: [UInt8], gzip: Bool, answer: SimpleValue)] = [
            (SimpleSerialization.encode([.string("plain")]), false, .string("plain")),
            (SimpleSerialization.encode([nested, .string("second")]), false, nested),
            ([], false, .null),
            (try Gzip.compress(SimpleSerialization.encode([.string("zipped"), .bool(true)])), true, .string("zipped")),
        ]
        for method in ["echo", "echoDecoded"] {
            for (index, item) in cases.enumerated() {
                let id = UInt64(method == "echo" ? index + 1 : index + 101)
                peer.send(rawRequest(id: id, service: demo, method: method, body: item.body, gzip: item.gzip))
                let response = await peer.response(to: id)
                #expect(response?.errorInfo == nil, "\(method) #\(index): \(response?.errorInfo?.errmsg ?? "")")
                #expect(try response?.decodedValues() == [item.answer], "\(method) #\(index)")
            }
        }
    }

    @Test("every undecodable request to every demo method gets 500 \"deserialize...\", errtype 1")
    func undecodableDemoRequests() async throws {
        let served = try await DemoServePeer()
        defer { served.close() }
        let peer = served.peer
        let bodies = try undecodableBodies(limit: FrameDecoder.defaultMaxContentLength)
        #expect(bodies.count == 11)
        var id: UInt64 = 0
        var sent: [(UInt64, String)] = []
        for method in ["echo", "echoDecoded", "hello", "sleep", "fail"] {
            for (name, body, gzip) in bodies {
                id += 1
                sent.append((id, "\(method): \(name)"))
                peer.send(rawRequest(id: id, service: demo, method: method, body: body, gzip: gzip))
            }
        }
        for (id, what) in sent {
            // Inflating 10 MiB to find the bomb is slow in a debug build.
            let response = await peer.response(to: id, timeout: .seconds(30))
            let info = response?.errorInfo
            #expect(info?.errcode == 500, "\(what)")
            #expect(info?.errmsg.hasPrefix("deserialize") == true, "\(what): \(info?.errmsg ?? "no error")")
            #expect(info?.errtype == MotanErrorInfo.serviceType, "\(what)")
        }
        #expect(!peer.isClosed)
        #expect(peer.decodeError.value == nil)
        #expect(peer.frames.value.count == sent.count, "answered: \(peer.frames.value.map(\.requestID))")
    }

    @Test("a half-close answers every request already read, then closes")
    func halfCloseAnswersInFlight() async throws {
        let fixture = try ServerFixture { registry in
            registry.handleAsync(service: service, method: "sleep") { request in
                let ms = request.arguments.first?.integerValue ?? 0
                try await Task.sleep(for: .milliseconds(ms))
                return .int64(ms)
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "sleep", arguments: [.int64(200)]))
        peer.send(requestFrame(id: 2, service: service, method: "sleep", arguments: [.int64(0)]))
        peer.send(Frame.heartbeatRequest(requestID: 3))
        peer.shutdownWrite()
        #expect(await eventually { peer.isClosed })
        #expect(try peer.responses(to: 1).first?.decodedValues() == [.int64(200)])
        #expect(try peer.responses(to: 2).first?.decodedValues() == [.int64(0)])
        #expect(peer.responses(to: 3).first?.isHeartbeat == true)
        #expect(await eventually { fixture.server.statistics.openConnections == 0 })
    }

    @Test("after a half-close, an answer that never comes does not keep the connection open")
    func halfCloseDeadline() async throws {
        let held = Box<[PendingResponse]>([])
        let fixture = try ServerFixture(configuration: .init(answerDeadlineAfterPeerClose: .milliseconds(200))) {
            registry in
            registry.handle(service: service, method: "hold") { _, responder in
                let pending = responder.detach()
                held.mutate { $0.append(pending) }
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "hold"))
        #expect(await eventually { held.value.count == 1 })
        peer.shutdownWrite()
        #expect(await eventually { peer.isClosed })
        #expect(peer.frames.value.isEmpty)
        // Answering after the close goes nowhere and settles the count.
        held.value.first?.respond("late")
        held.mutate { $0.removeAll() }
        #expect(await eventually { fixture.server.statistics.inFlight == 0 })
    }

    @Test("a client that never reads stops being read; reading resumes once it drains")
    func writeBackpressure() async throws {
        let fixture = try ServerFixture { _ in }
        defer { fixture.shutdown() }
        let socket = try PlainSocket(port: fixture.server.port)
        let before = try #require(residentBytes())
        // Heartbeats: 21 bytes in, 21 bytes out, no handler involved.
        var batch: [UInt8] = []
        for _ in 0..<1000 { FrameEncoder.encodeHeartbeatRequest(requestID: 7, into: &batch) }
        let cap = 256 << 20
        var sent = 0
        var blockedSince: ContinuousClock.Instant?
        var blocked = false
        let giveUp = ContinuousClock.now + .seconds(5)
        while sent < cap && ContinuousClock.now < giveUp {
            let offset = sent % batch.count
            let n = try #require(batch.withUnsafeBytes { socket.send(UnsafeRawBufferPointer(rebasing: $0[offset...])) })
            if n > 0 {
                sent += n
                blockedSince = nil
                continue
            }
            let now = ContinuousClock.now
            if let since = blockedSince {
                if now - since > .milliseconds(500) {
                    blocked = true
                    break
                }
            } else {
                blockedSince = now
            }
            usleep(1_000)
        }
        let grown = (residentBytes() ?? 0) - before
        #expect(blocked, "the sender never blocked: \(sent >> 20) MiB accepted")
        #expect(grown < 16 << 20, "resident set grew by \(grown >> 20) MiB")
        #expect(fixture.server.statistics.readPauses >= 1)

        // Drain: every heartbeat sent gets its answer, so reading resumed.
        let frame = 21
        let whole = (sent + frame - 1) / frame * frame
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let deadline = ContinuousClock.now + .seconds(20)
        while received < whole && ContinuousClock.now < deadline {
            if sent < whole {
                let offset = sent % batch.count
                let rest = min(whole - sent, batch.count - offset)
                let n = try #require(
                    batch.withUnsafeBytes {
                        socket.send(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + rest)]))
                    })
                sent += n
            }
            let n = try #require(buffer.withUnsafeMutableBytes { socket.receive(into: $0) })
            received += n
            if n == 0 { usleep(500) }
        }
        #expect(received == whole)
        #expect(fixture.server.statistics.heartbeatsAnswered == whole / frame)
    }

    @Test("large and gzipped async bodies are decoded in the task; a bomb still gets 500 deserialize")
    func asyncDecodeOffLoop() async throws {
        let fixture = try ServerFixture(configuration: .init(maxContentLength: 64 << 10)) { registry in
            registry.handleAsync(service: service, method: "count") { request in
                .int64(Int64(request.arguments.count))
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        let counters = fixture.server.shared.counters
        peer.send(requestFrame(id: 1, service: service, method: "count", arguments: ["small"]))
        #expect(try await peer.response(to: 1)?.decodedValues() == [.int64(1)])
        #expect(counters.deferredDecodes.load(ordering: .relaxed) == 0)

        let large = [SimpleValue](repeating: .string(String(repeating: "x", count: 100)), count: 100)
        peer.send(requestFrame(id: 2, service: service, method: "count", arguments: large))
        #expect(try await peer.response(to: 2)?.decodedValues() == [.int64(100)])
        let zipped = Frame.request(
            requestID: 3, service: service, method: "count", arguments: ["a", "b"], gzipAbove: 1)
        #expect(zipped.header.isGzipped)
        peer.send(zipped)
        #expect(try await peer.response(to: 3)?.decodedValues() == [.int64(2)])
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: (64 << 10) + 1))
        peer.send(rawRequest(id: 4, service: service, method: "count", body: bomb, gzip: true))
        let refused = try #require(await peer.response(to: 4)?.errorInfo)
        #expect(refused.errcode == 500 && refused.errmsg.hasPrefix("deserialize") && refused.errtype == 1)
        #expect(counters.deferredDecodes.load(ordering: .relaxed) == 3)
        #expect(fixture.server.statistics.inFlight == 0)
    }

    @Test("a body within the content limit but over the decode budget gets 500 deserialize, on and off the loop")
    func decodeBudget() async throws {
        let limit = 64 << 10
        let fixture = try ServerFixture(configuration: .init(maxContentLength: limit)) { registry in
            registry.handle(service: service, method: "countOnLoop") { request, responder in
                responder.respond(.int64(Int64(request.arguments.count)))
            }
            registry.handleAsync(service: service, method: "count") { request in
                .int64(Int64(request.arguments.count))
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        // One byte per null on the wire, a whole element in memory: just past the budget, well
        // within the content limit, plain and gzipped.
        let elements = DecodeBudget(contentLimit: limit).maxElements + 1
        let nulls = [UInt8](repeating: 0, count: elements)
        #expect(nulls.count < limit)
        var id: UInt64 = 0
        for method in ["countOnLoop", "count"] {
            for (body, gzip) in [(nulls, false), (try Gzip.compress(nulls), true)] {
                id += 1
                peer.send(rawRequest(id: id, service: service, method: method, body: body, gzip: gzip))
                let refused = try #require(await peer.response(to: id)?.errorInfo, "\(method) gzip=\(gzip)")
                #expect(
                    refused.errcode == 500 && refused.errmsg.contains("more than \(elements - 1) elements"),
                    "\(refused.errmsg)")
            }
        }
        // One element fewer decodes.
        id += 1
        peer.send(rawRequest(id: id, service: service, method: "countOnLoop", body: Array(nulls.dropLast())))
        #expect(try await peer.response(to: id)?.decodedValues() == [.int64(Int64(elements - 1))])
    }

    @Test("draining: requests in flight get their answers, heartbeats are answered, new connections refused")
    func drain() async throws {
        let fixture = try ServerFixture(loops: 2) { registry in
            registry.handleAsync(service: service, method: "sleep") { request in
                let ms = request.arguments.first?.integerValue ?? 0
                try await Task.sleep(for: .milliseconds(ms))
                return .int64(ms)
            }
        }
        defer { fixture.shutdown() }
        let first = try await fixture.connectPeer()
        let second = try await fixture.connectPeer()
        defer {
            first.close()
            second.close()
        }
        for id: UInt64 in 1...3 {
            first.send(requestFrame(id: id, service: service, method: "sleep", arguments: [.int64(300)]))
            second.send(requestFrame(id: id, service: service, method: "sleep", arguments: [.int64(300)]))
        }
        #expect(await eventually { fixture.server.requestsInFlight == 6 })
        await fixture.server.stopAccepting()
        await #expect(throws: (any Error).self) { _ = try await fixture.connectPeer() }
        first.send(Frame.heartbeatRequest(requestID: 99))
        #expect(await first.response(to: 99)?.isHeartbeat == true)
        #expect(await fixture.server.waitUntilIdle(timeout: .seconds(5)))
        #expect(await fixture.server.shutdown(gracePeriod: .seconds(5)))
        for peer in [first, second] {
            for id: UInt64 in 1...3 {
                #expect(try peer.responses(to: id).first?.decodedValues() == [.int64(300)])
            }
            #expect(await eventually { peer.isClosed })
        }
        #expect(fixture.server.statistics.openConnections == 0)
    }

    @Test("shutdown answers what is in flight, then closes; past the grace period it closes anyway")
    func shutdownWithGracePeriod() async throws {
        let held = Box<[PendingResponse]>([])
        let fixture = try ServerFixture { registry in
            registry.handleAsync(service: service, method: "sleep") { request in
                let ms = request.arguments.first?.integerValue ?? 0
                try await Task.sleep(for: .milliseconds(ms))
                return .int64(ms)
            }
            registry.handle(service: service, method: "hold") { _, responder in
                let pending = responder.detach()
                held.mutate { $0.append(pending) }
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: service, method: "sleep", arguments: [.int64(200)]))
        peer.send(requestFrame(id: 2, service: service, method: "hold"))
        #expect(await eventually { fixture.server.requestsInFlight == 2 })
        // The held request never finishes: the grace period runs out.
        #expect(await fixture.server.shutdown(gracePeriod: .milliseconds(500)) == false)
        #expect(try peer.responses(to: 1).first?.decodedValues() == [.int64(200)])
        #expect(await eventually { peer.isClosed })
        #expect(peer.responses(to: 2).isEmpty)
        held.mutate { $0.removeAll() }
    }

    @Test("motan serve: SIGTERM while a call is in flight; the call completes and the process exits 0")
    func serveStopsOnSIGTERM() async throws {
        let server = try ServeProcess()
        defer { server.terminate() }
        let peers = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "serve-peer")
        defer { peers.syncShutdown() }
        let peer = try await BytePeer.connect(to: server.address, on: peers.loops[0])
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: demo, method: "echo", arguments: ["up"]))
        #expect(try await peer.response(to: 1)?.decodedValues() == ["up"])
        peer.send(requestFrame(id: 2, service: demo, method: "sleep", arguments: [.int64(1500)]))
        // The request has a 1.5 s head start on the signal's effect; 300 ms gets it there.
        try await Task.sleep(for: .milliseconds(300))
        server.signal(SIGTERM)
        let answer = await peer.response(to: 2, timeout: .seconds(10))
        #expect(try answer?.decodedValues() == [.int64(1500)])
        #expect(await eventually(timeout: .seconds(10)) { !server.process.isRunning })
        if !server.process.isRunning {
            #expect(server.process.terminationReason == .exit)
            #expect(server.process.terminationStatus == 0)
        }
        #expect(await eventually { peer.isClosed })
    }
}
