import Testing

@testable import MotanCodec

/// Frames built by hand from the wire specification, so that coverage does not depend on the
/// captured vectors.
struct SpecFrameTests {
    static let service = "com.weibo.motan.demo.service.MotanDemoService"

    /// The worked example of section 1: a motan-go request for `hello("testmsg")`.
    static var workedExample: [UInt8] {
        var meta: [UInt8] = []
        let fields = [
            "M_p", service, "M_g", "motan-demo-rpc", "M_m", "hello", "M_pp", "motan2", "M_s", "peer-client",
        ]
        meta.append(contentsOf: fields.joined(separator: "\n").utf8)
        return hex("f1f1 00 08 30 18eb05772d000001 0000006a") + meta
            + hex("0000000c 01 00000007 746573746d7367")
    }

    @Test func workedExampleDecodes() throws {
        let bytes = Self.workedExample
        #expect(bytes.count == 139)
        let frame = try decodeOne(bytes)
        #expect(
            frame.header
                == FrameHeader(flags: [], version: 1, status: 0, serialization: 6, requestID: 0x18eb_0577_2d00_0001))
        #expect(frame.meta.service == Self.service)
        #expect(frame.meta.group == "motan-demo-rpc")
        #expect(frame.meta.method == "hello")
        #expect(frame.meta.proxyProtocol == "motan2")
        #expect(frame.meta.source == "peer-client")
        #expect(frame.meta.count == 5)
        #expect(frame.body == hex("01 00000007 746573746d7367"))
        #expect(try frame.decodedValues() == [.string("testmsg")])
        #expect(encoded(frame) == bytes)
    }

    @Test func workedExampleDecodesOneByteAtATimeAndInAnySplit() throws {
        let bytes = Self.workedExample
        let expected = try decodeOne(bytes)
        for chunk in [1, 2, 3, 5, 7, 13, 16, 17, 18, 20, 21, 64, 138] {
            let result = decodeStream(bytes + bytes, chunks: [chunk])
            #expect(result.error == nil, "chunk \(chunk)")
            #expect(result.frames == [expected, expected], "chunk \(chunk)")
        }
    }

    @Test func requestBuilderFollowsTheSendingRules() throws {
        let frame = Frame.request(
            requestID: 0x18eb_0577_2d00_0001, service: Self.service, method: "hello", group: "motan-demo-rpc",
            arguments: ["testmsg"], extraMeta: ["M_pp": "motan2", "M_s": "peer-client", "M_p": "ignored"])
        let bytes = encoded(frame)
        #expect(Array(bytes[2..<5]) == [0x00, 0x08, 0x30])
        #expect(pairs(frame.meta).map(\.key) == ["M_p", "M_m", "M_g", "M_pp", "M_s"])
        #expect(frame.meta.service == Self.service)
        // Same pairs as the worked example, M_p and M_m first, no trailing LF.
        #expect(Set(pairs(frame.meta)) == Set(pairs(try decodeOne(Self.workedExample).meta)))
        #expect(bytes.count == 139)
        #expect(bytes[17 + 0x6a - 1] != 0x0A)
    }

    /// Section 10's example, built with Java's encoder steps (M_pt first, Java member order).
    @Test func javaStyleErrorResponseExample() throws {
        let bytes = hex(
            "f1f10109300102030405060708000000354d5f70740a300a4d5f650a7b22657272636f6465223a33303030312c226572726d7367223a2278222c2265727274797065223a327d00000000"
        )
        let frame = try decodeOne(bytes)
        #expect(frame.header.flags == .response)
        #expect(frame.header.status == 1)
        #expect(frame.requestID == 0x0102_0304_0506_0708)
        #expect(
            pairs(frame.meta) == [
                MetaPair("M_pt", "0"), MetaPair("M_e", #"{"errcode":30001,"errmsg":"x","errtype":2}"#),
            ])
        #expect(frame.errorInfo == MotanErrorInfo(errcode: 30001, errmsg: "x", errtype: 2))
        #expect(frame.errorInfo?.isBusinessError == true)
        #expect(frame.body.isEmpty)
        // Our error response for the same error is exactly these bytes (members in Go order).
        #expect(
            encoded(
                .errorResponse(
                    requestID: 0x0102_0304_0506_0708, error: MotanErrorInfo(errcode: 30001, errmsg: "x", errtype: 2)))
                == bytes)
        var direct: [UInt8] = []
        FrameEncoder.encodeErrorResponse(
            requestID: 0x0102_0304_0506_0708, error: MotanErrorInfo(errcode: 30001, errmsg: "x", errtype: 2),
            into: &direct)
        #expect(direct == bytes)
    }

    @Test func javaHeartbeatsAreHeartbeatsAndWeAnswerInGoForm() throws {
        let request = try decodeOne(hex("f1f110080801020304050607080000000000000000"))
        #expect(request.isHeartbeat)
        #expect(!request.isResponse)
        #expect(request.header.serialization == 1)
        let response = try decodeOne(hex("f1f111080801020304050607080000000000000000"))
        #expect(response.isHeartbeat && response.isResponse)
        #expect(
            encoded(.heartbeatResponse(requestID: request.requestID))
                == hex("f1f113083001020304050607080000000000000000"))
        #expect(
            encoded(.heartbeatRequest(requestID: request.requestID))
                == hex("f1f112083001020304050607080000000000000000"))
    }

    @Test func goHeartbeatBytes() throws {
        let bytes = hex("f1f1 12 08 30 0000000000000002 00000000 00000000")
        let frame = try decodeOne(bytes)
        #expect(frame.header.flags == [.heartbeat, .proxy])
        #expect(frame.requestID == 2)
        #expect(frame.meta.isEmpty && frame.body.isEmpty)
        var output: [UInt8] = [0xAA]
        FrameEncoder.encodeHeartbeatRequest(requestID: 2, into: &output)
        #expect(output == [0xAA] + bytes)
    }

    @Test func heartbeatWithMetaAndBodyStillDecodes() throws {
        let bytes = hex("f1f1 10 08 30 000000000000002a 00000003 6b0a76 0000000c 0100000007746573746d7367")
        let frame = try decodeOne(bytes)
        #expect(frame.isHeartbeat)
        #expect(frame.meta["k"] == "v")
        #expect(encoded(frame) == bytes)
    }

    @Test func metaWithOneTrailingLFIsAccepted() throws {
        let meta = Array("M_p\nsvc\nM_m\nHello\n".utf8)
        let bytes = hex("f1f1 00 08 30 000000000000002e") + be32(meta.count) + meta + be32(0)
        let frame = try decodeOne(bytes)
        #expect(pairs(frame.meta) == [MetaPair("M_p", "svc"), MetaPair("M_m", "Hello")])
        #expect(frame.meta.encodedLength == meta.count - 1)
        #expect(encoded(frame).count == bytes.count - 1)
    }

    @Test func onewayRequestDecodesNormally() throws {
        let frame = try decodeOne(
            hex("f1f1 04 08 30 000000000000002c 00000007 4d5f6d0a48656c6c6f 00000000").fixedMetaSize())
        #expect(frame.header.flags == .oneway)
        #expect(frame.meta.method == "Hello")
    }

    @Test func exceptionResponsesParseLeniently() throws {
        func response(meta: [UInt8]) throws -> Frame {
            try decodeOne(hex("f1f1 01 09 30 0000000000000001") + be32(meta.count) + meta + be32(0))
        }
        let javaOrder = try response(meta: Array(#"M_e\#n{"errcode":10003,"errtype":1,"errmsg":"timeout"}"#.utf8))
        #expect(javaOrder.errorInfo == MotanErrorInfo(errcode: 10003, errmsg: "timeout", errtype: 1))
        let notJSON = try response(meta: Array("M_e\nprovider call panic".utf8))
        #expect(notJSON.errorInfo == MotanErrorInfo(errcode: 10001, errmsg: "provider call panic", errtype: 1))
        let missing = try response(meta: Array("M_pt\n3".utf8))
        #expect(missing.errorInfo == MotanErrorInfo(errcode: 10001, errmsg: "", errtype: 1))
        #expect(missing.meta.processTimeMillis == 3)
        // Status other than 1 is still an exception (Java); status 0 is not.
        let status2 = try decodeOne(hex("f1f1 01 0a 30 0000000000000001 00000000 00000000"))
        #expect(status2.errorInfo != nil)
        let normal = try decodeOne(hex("f1f1 01 08 30 0000000000000001 00000000 00000000"))
        #expect(normal.errorInfo == nil)
    }

    @Test func serializationByteKeepsOnlyTheId() throws {
        let frame = try decodeOne(hex("f1f1 00 08 37 0000000000000001 00000000 00000000"))
        #expect(frame.header.serialization == 6)
        #expect(encoded(frame)[4] == 0x30)
    }

    @Test func requestIDIsOpaqueSixtyFourBits() throws {
        let frame = try decodeOne(hex("f1f1 00 08 30 ffffffffffffffff 00000000 00000000"))
        #expect(frame.requestID == UInt64.max)
        #expect(encoded(Frame.heartbeatRequest(requestID: .max))[5..<13].allSatisfy { $0 == 0xFF })
    }

    @Test func emptyBodyAndNullResponse() throws {
        let null = Frame.response(requestID: 1, value: .null)
        #expect(null.body == [0x00])
        let noArguments = Frame.request(requestID: 1, service: "s", method: "m")
        #expect(noArguments.body.isEmpty)
        #expect(try decodeOne(encoded(noArguments)).decodedValues() == [])
    }
}

func be32(_ value: Int) -> [UInt8] {
    [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
}

extension Array where Element == UInt8 {
    /// Recomputes the meta size field of a hand-written frame with an empty body.
    func fixedMetaSize() -> [UInt8] {
        var bytes = self
        let metaLength = count - 21
        bytes.replaceSubrange(13..<17, with: be32(metaLength))
        return bytes
    }
}

struct EncoderMetaTests {
    @Test func dedicatedEncodersSkipTheKeysTheyWriteThemselves() throws {
        let extra: Meta = [
            "M_p": "x", "M_m": "x", "M_g": "x", "M_pp": "motan2", "M_pt": "9", "M_e": "x", "M_md": "void", "M_gx": "1",
        ]
        var request: [UInt8] = []
        FrameEncoder.encodeRequest(
            requestID: 1, service: "svc", method: "m", group: "g", extraMeta: extra,
            body: UnsafeRawBufferPointer(start: nil, count: 0),
            into: &request)
        #expect(
            pairs(try decodeOne(request).meta) == [
                MetaPair("M_p", "svc"), MetaPair("M_m", "m"), MetaPair("M_g", "g"), MetaPair("M_pp", "motan2"),
                MetaPair("M_pt", "9"), MetaPair("M_e", "x"), MetaPair("M_md", "void"), MetaPair("M_gx", "1"),
            ])
        var response: [UInt8] = []
        FrameEncoder.encodeResponse(requestID: 1, processTime: 5, body: [0x00], extraMeta: extra, into: &response)
        #expect(
            pairs(try decodeOne(response).meta) == [
                MetaPair("M_pt", "5"), MetaPair("M_p", "x"), MetaPair("M_m", "x"), MetaPair("M_g", "x"),
                MetaPair("M_pp", "motan2"), MetaPair("M_md", "void"), MetaPair("M_gx", "1"),
            ])
        var failure: [UInt8] = []
        FrameEncoder.encodeErrorResponse(
            requestID: 1, error: MotanErrorInfo(errcode: 1, errmsg: "m", errtype: 0), processTime: nil,
            extraMeta: ["M_e": "old", "a": "b"], into: &failure)
        #expect(
            pairs(try decodeOne(failure).meta) == [
                MetaPair("M_e", #"{"errcode":1,"errmsg":"m","errtype":0}"#), MetaPair("a", "b"),
            ])
    }
}
