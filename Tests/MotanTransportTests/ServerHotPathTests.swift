import MotanCodec
import MotanLoop
import MotanTestSupport
import Synchronization
import Testing

@testable import MotanTransport

/// A responder moved out of its handler call, kept in a class the way an application might.
final class ResponderSlot: @unchecked Sendable {
    var responder: Responder?
}

@Suite("Server hot path")
struct ServerHotPathTests {
    static let long = String(repeating: "compressible ", count: 40)

    @Test("bodies longer than gzipResponsesAbove go out gzipped; short and passed-through bodies go out plain")
    func gzipResponses() async throws {
        let fixture = try ServerFixture(configuration: .init(gzipResponsesAbove: 100)) { registry in
            registry.handle(service: "s", method: "long") { _, responder in responder.respond(.string(Self.long)) }
            registry.handle(service: "s", method: "short") { _, responder in responder.respond(.string("hi")) }
            registry.handleRaw(service: "s", method: "raw") { request, responder in
                responder.respond(passingThrough: request)
            }
            registry.handle(service: "s", method: "later") { _, responder in
                let pending = responder.detach()
                pending.respond(.string(Self.long))
            }
            registry.handleRaw(service: "s", method: "serialized") { _, responder in
                responder.respond(writingBody: { SimpleSerialization.encode(.string(Self.long), into: &$0) })
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        let methods = ["long", "short", "raw", "later", "serialized", "long"]
        for (index, method) in methods.enumerated() {
            peer.send(
                Frame.request(
                    requestID: UInt64(index + 1), service: "s", method: method, arguments: [.string(Self.long)]))
        }
        for (index, method) in methods.enumerated() {
            let response = await peer.response(to: UInt64(index + 1))
            let value = try response?.decodedValues()
            let expectGzip = method != "short" && method != "raw"
            #expect(response?.header.isGzipped == expectGzip, "\(method)")
            #expect(value == [.string(method == "short" ? "hi" : Self.long)], "\(method)")
        }
    }

    @Test("arguments a handler keeps stay as they were while later requests reuse the argument storage")
    func keptArgumentsSurviveReuse() async throws {
        let kept = Mutex<[[SimpleValue]]>([])
        let fixture = try ServerFixture { registry in
            registry.handle(service: "s", method: "keep") { request, responder in
                if request.arguments.first == .string("keep me") { kept.withLock { $0.append(request.arguments) } }
                responder.respond(request.arguments.last ?? .null)
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        let keptArguments: [SimpleValue] = [.string("keep me"), .int64(42), .array([.string("nested")])]
        peer.send(Frame.request(requestID: 1, service: "s", method: "keep", arguments: keptArguments))
        // Later requests in the same reads, with more and fewer arguments than the kept one.
        for id in 2...40 {
            let arguments = (0..<(id % 5)).map { SimpleValue.string("request \(id) argument \($0)") }
            peer.send(Frame.request(requestID: UInt64(id), service: "s", method: "keep", arguments: arguments))
        }
        for id in 1...40 {
            let response = await peer.response(to: UInt64(id))
            let expected: SimpleValue =
                id == 1
                ? .array([.string("nested")]) : id % 5 == 0 ? .null : .string("request \(id) argument \(id % 5 - 1)")
            #expect(try response?.decodedValues() == [expected], "request \(id)")
        }
        #expect(kept.withLock { $0 } == [keptArguments])
    }

    @Test("raw handlers check arguments within the server's budget and pass a value slice through")
    func rawArgumentChecks() async throws {
        let fixture = try ServerFixture(configuration: .init(maxContentLength: 4096)) { registry in
            registry.handleRaw(service: "s", method: "second") { request, responder in
                let shape: SimpleBodyShape?
                do throws(MotanCodecError) {
                    shape = try request.checkArguments()
                } catch {
                    return responder.respond(undecodableArguments: error)
                }
                guard let shape else { return responder.respond(.string("gzipped")) }
                // Where the second value lies: after the first.
                let start = shape.firstValue?.upperBound ?? 0
                let end = request.bodyCount
                guard shape.count >= 2 else { return responder.respond(.int32(Int32(shape.count))) }
                let rest = request.withUnsafeBody {
                    try? SimpleSerialization.validate(UnsafeRawBufferPointer(rebasing: $0[start..<end]))
                }
                guard let second = rest?.firstValue else { return responder.respond(.null) }
                responder.respond(
                    passingThrough: request, value: (start + second.lowerBound)..<(start + second.upperBound))
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        let twoValues = SimpleSerialization.encode([.string("first"), .array([.string("second")]), .bool(false)])
        // 1,100 nulls fit in the bytes but not in the element budget of a 4 KiB content limit (1,024).
        let tooMany = [UInt8](repeating: 0, count: 1_100)
        let requests: [([UInt8], Bool)] = [
            (twoValues, false), (SimpleSerialization.encode([.int64(1)]), false), (tooMany, false), ([0x7F], false),
            (try Gzip.compress(twoValues), true),
        ]
        for (index, (body, gzip)) in requests.enumerated() {
            var frame = Frame.request(requestID: UInt64(index + 1), service: "s", method: "second")
            frame.body = body
            if gzip { frame.header.flags.insert(.gzip) }
            peer.send(frame)
        }
        #expect(try await peer.response(to: 1)?.decodedValues() == [.array([.string("second")])])
        #expect(try await peer.response(to: 2)?.decodedValues() == [.int32(1)])
        for id: UInt64 in [3, 4] {
            let info = await peer.response(to: id)?.errorInfo
            #expect(info?.errcode == 500 && info?.errmsg.hasPrefix("deserialize arguments fail.") == true, "\(id)")
        }
        #expect(try await peer.response(to: 5)?.decodedValues() == [.string("gzipped")])
    }

    @Test("a value answer larger than a write chunk goes out whole")
    func largeValueAnswer() async throws {
        let large = String(repeating: "0123456789abcdef", count: 40_000)
        let fixture = try ServerFixture { registry in
            registry.handle(service: "s", method: "large") { _, responder in responder.respond(.string(large)) }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        for id in 1...3 {
            peer.send(Frame.request(requestID: UInt64(id), service: "s", method: "large", arguments: []))
        }
        for id in 1...3 {
            #expect(try await peer.response(to: UInt64(id))?.decodedValues() == [.string(large)])
        }
    }

    @Test("a responder answered after its connection closed frees the connection and settles the count")
    func responderOutlivesItsConnection() async throws {
        let slot = ResponderSlot()
        // The peer's close ends the connection once this deadline for unfinished answers passes.
        let configuration = ServerEndpoint.Configuration(answerDeadlineAfterPeerClose: .milliseconds(20))
        let fixture = try ServerFixture(configuration: configuration) { registry in
            registry.handle(service: "s", method: "keep") {
                (_: borrowing ServerRequest, responder: consuming Responder) in
                slot.responder = .some(responder)
            }
            registry.handle(service: "s", method: "echo") { request, responder in
                responder.respond(request.arguments.first ?? .null)
            }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        peer.send(Frame.request(requestID: 1, service: "s", method: "keep"))
        peer.send(Frame.request(requestID: 2, service: "s", method: "echo", arguments: ["x"]))
        #expect(try await peer.response(to: 2)?.decodedValues() == ["x"])
        #expect(fixture.server.requestsInFlight == 1)
        peer.close()
        #expect(await eventually { fixture.server.statistics.openConnections == 0 })
        // Answering now writes nothing, but must neither crash nor leak the in-flight slot.
        fixture.group.loops[0].runSync {
            slot.responder.take()?.respond(.string("late"))
        }
        #expect(fixture.server.requestsInFlight == 0)
        // A responder dropped after the close answers "dropped" to nobody, just as safely.
        let again = try await fixture.connectPeer()
        again.send(Frame.request(requestID: 3, service: "s", method: "keep"))
        #expect(await eventually { fixture.server.requestsInFlight == 1 })
        again.close()
        #expect(await eventually { fixture.server.statistics.openConnections == 0 })
        fixture.group.loops[0].runSync { slot.responder = nil }
        #expect(fixture.server.requestsInFlight == 0)
    }

    @Test("routing errors name the service or method from the wire bytes, escaped as JSON")
    func routingErrorsFromWireBytes() async throws {
        let fixture = try ServerFixture { registry in
            registry.handle(service: "s", method: "m") { _, responder in responder.respond(.null) }
        }
        defer { fixture.shutdown() }
        let peer = try await fixture.connectPeer()
        defer { peer.close() }
        peer.send(Frame.request(requestID: 1, service: "no\"such", method: "m"))
        peer.send(Frame.request(requestID: 2, service: "s", method: "nä"))
        #expect(
            await peer.response(to: 1)?.meta[MetaKey.exception]
                == #"{"errcode":404,"errmsg":"provider not exist serviceKey=no\"such","errtype":1}"#)
        #expect(
            await peer.response(to: 2)?.meta[MetaKey.exception]
                == #"{"errcode":500,"errmsg":"method nä is not found in provider.","errtype":1}"#)
    }
}
