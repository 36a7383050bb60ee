import MotanCodec
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

@Suite("Server endpoint")
struct ServerEndpointTests {
    @Test("every heartbeat variant is answered with 0x13 and the same id; the handler never sees it")
    func heartbeatsAnswered() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peers = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "byte-peer")
        defer { peers.syncShutdown() }
        let peer = try await BytePeer.connect(to: server.address, on: peers.loops[0])
        defer { peer.close() }

        // Java form 0x10 (serialization 0x08), motan-go form 0x12, and one carrying meta and body.
        var java = Frame.heartbeatRequest(requestID: 0x0102_0304_0506_0708)
        java.header.flags = .heartbeat
        java.header.serialization = SerializationID.grpcPB
        let go = Frame.heartbeatRequest(requestID: 42)
        var loaded = Frame.heartbeatRequest(requestID: 43)
        loaded.meta = ["M_p": TestService.name, "M_m": "echo"]
        loaded.body = [1, 0, 0, 0, 1, 0x41]
        for frame in [java, go, loaded] { peer.send(frame) }

        // motan-go's answer (spec: motan2-wire.md, section 11), byte for byte, in request order.
        let expected = hexBytes(
            "f1f1130830" + "0102030405060708" + "0000000000000000"
                + "f1f1130830" + "000000000000002a" + "0000000000000000"
                + "f1f1130830" + "000000000000002b" + "0000000000000000")
        #expect(await eventually { peer.bytes.value.count >= expected.count })
        #expect(peer.bytes.value == expected)
        #expect(server.calls.value == 0)
        #expect(server.server.statistics.heartbeatsAnswered == 3)
        #expect(!peer.isClosed)
    }

    @Test("with heartbeats switched off a heartbeat closes the connection, requests still work")
    func heartbeatsRefused() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        server.server.heartbeatsEnabled = false
        let peer = try await server.connectPeer()
        peer.send(requestFrame(id: 1))
        #expect(try await peer.response(to: 1)?.decodedValues() == ["hi"])
        peer.send(Frame.heartbeatRequest(requestID: 2))
        #expect(await eventually { peer.isClosed })
        #expect(peer.frames.value.count == 1)
        server.server.heartbeatsEnabled = true
        let again = try await server.connectPeer()
        defer { again.close() }
        again.send(Frame.heartbeatRequest(requestID: 3))
        #expect(await again.response(to: 3)?.isHeartbeat == true)
    }

    @Test("unknown service → 404, unknown method → 500, both errtype 1 with M_pt")
    func routingErrors() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, service: "com.weibo.NoSuchService"))
        peer.send(requestFrame(id: 2, method: "notExist"))

        let missingService = try #require(await peer.response(to: 1))
        #expect(missingService.header.status == 1)
        #expect(missingService.meta.processTime != nil)
        #expect(
            missingService.errorInfo
                == MotanErrorInfo(
                    errcode: 404, errmsg: "provider not exist serviceKey=com.weibo.NoSuchService", errtype: 1))
        let missingMethod = try #require(await peer.response(to: 2))
        #expect(
            missingMethod.errorInfo
                == MotanErrorInfo(errcode: 500, errmsg: "method notExist is not found in provider.", errtype: 1))
        #expect(missingMethod.body.isEmpty)
        #expect(server.calls.value == 0)
    }

    @Test("a throwing async handler answers 500 with its message; on-loop and async handlers both answer")
    func handlerFailures() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, method: "throw", arguments: ["disk on fire"]))
        peer.send(requestFrame(id: 2, method: "echoAsync", arguments: ["async"]))
        peer.send(requestFrame(id: 3, method: "args", arguments: [.int32(7), "x", .null]))

        let thrown = try #require(await peer.response(to: 1))
        #expect(thrown.errorInfo == MotanErrorInfo(errcode: 500, errmsg: "disk on fire", errtype: 2))
        #expect(try await peer.response(to: 2)?.decodedValues() == ["async"])
        #expect(try await peer.response(to: 3)?.decodedValues() == [.array([.int32(7), "x", .null])])
    }

    @Test("a request in an unknown serialization gets 500 without M_pt")
    func unknownSerialization() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        var frame = requestFrame(id: 9)
        frame.header.serialization = SerializationID.hessian2
        peer.send(frame)
        let response = try #require(await peer.response(to: 9))
        #expect(response.errorInfo?.errcode == 500)
        #expect(response.meta.processTime == nil)
        #expect(server.calls.value == 0)
    }

    @Test("oneway requests are handled but never answered")
    func oneway() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        peer.send(requestFrame(id: 1, flags: .oneway))
        peer.send(requestFrame(id: 2, method: "echoAsync", flags: .oneway))
        peer.send(requestFrame(id: 3, method: "nope", flags: .oneway))
        // A normal request afterwards: once its answer is in, any answer to the oneway ones would be too.
        peer.send(requestFrame(id: 4, method: "echoAsync"))
        _ = try #require(await peer.response(to: 4))
        #expect(await eventually { server.calls.value == 3 })
        #expect(peer.frames.value.map(\.requestID) == [4])
    }

    @Test("a malformed frame closes only its own connection")
    func malformedFrame() async throws {
        let server = try TestServer(loops: 2)
        defer { server.shutdown() }
        let good = try await server.connectPeer()
        defer { good.close() }
        good.send(requestFrame(id: 1))
        #expect(await good.response(to: 1) != nil)

        let cases: [(String, [UInt8])] = [
            ("bad magic", [0xF1, 0xF2, 0x00, 0x08, 0x30] + [UInt8](repeating: 0, count: 16)),
            ("version 2", [0xF1, 0xF1, 0x00, 0x10, 0x30] + [UInt8](repeating: 0, count: 16)),
            (
                "unpaired meta",
                [0xF1, 0xF1, 0x00, 0x08, 0x30, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0x4D, 0x5F, 0x70, 0, 0, 0, 0]
            ),
            (
                "oversized body",
                [0xF1, 0xF1, 0x00, 0x08, 0x30, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
            ),
        ]
        for (name, bytes) in cases {
            let bad = try await server.connectPeer()
            bad.send(bytes)
            #expect(await eventually { bad.isClosed }, "\(name)")
            #expect(bad.frames.value.isEmpty, "\(name)")
        }
        #expect(server.server.statistics.malformedCloses == cases.count)
        good.send(requestFrame(id: 2, arguments: ["still here"]))
        #expect(try await good.response(to: 2)?.decodedValues() == ["still here"])
        #expect(!good.isClosed)
    }

    @Test("requests beyond the per-connection in-flight limit are rejected, the rest complete")
    func inFlightLimit() async throws {
        let server = try TestServer(configuration: .init(maxInFlightPerConnection: 2))
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        for id: UInt64 in 1...3 { peer.send(requestFrame(id: id, method: "hold")) }
        let rejected = try #require(await peer.response(to: 3))
        #expect(rejected.errorInfo?.errcode == ServerErrorCode.rejected)
        #expect(server.held.value.count == 2)
        #expect(server.server.statistics.rejected == 1)
        server.releaseHeld()
        #expect(try await peer.response(to: 1)?.decodedValues() == ["released"])
        #expect(try await peer.response(to: 2)?.decodedValues() == ["released"])
        // Room again once answered.
        peer.send(requestFrame(id: 4))
        #expect(try await peer.response(to: 4)?.decodedValues() == ["hi"])
    }

    @Test("the answers to the frames of one read go out in one write, in order")
    func batching() async throws {
        let server = try TestServer()
        defer { server.shutdown() }
        let peer = try await server.connectPeer()
        defer { peer.close() }
        var bytes: [UInt8] = []
        for id: UInt64 in 1...200 {
            FrameEncoder.encode(requestFrame(id: id, arguments: [.int64(Int64(id))]), into: &bytes)
        }
        // Split mid-frame to exercise the incremental decoder.
        peer.send(Array(bytes[..<1000]))
        peer.send(Array(bytes[1000...]))
        #expect(await eventually { peer.frames.value.count == 200 })
        let values = try peer.frames.value.map { try $0.decodedValues() }
        #expect(values == (1...200).map { [.int64(Int64($0))] })
        // However the kernel split the 200 requests into reads, each read's answers (well under
        // the 64 KiB batch limit) left in one socket write: at most one write per read.
        let statistics = server.server.statistics
        #expect(statistics.writes <= statistics.reads, "\(statistics.writes) writes for \(statistics.reads) reads")
        #expect(statistics.writes < 200)
    }
}

func hexBytes(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}
