import Testing

@testable import MotanCodec

/// What `vectors/motan2/README.txt` says each captured frame holds.
struct VectorExpectation: Sendable, CustomTestStringConvertible {
    var name: String
    var size: Int? = nil
    var flags: UInt8
    var status: UInt8 = 0
    var serialization: UInt8 = 6
    var requestID: UInt64
    var meta: [MetaPair] = []
    /// motan-go writes meta from a Go map: only the set of pairs is meaningful.
    var metaOrderIsRandom = false
    /// Decoded body values (after gunzip).
    var values: [SimpleValue] = []
    var error: MotanErrorInfo? = nil

    var testDescription: String { name }
}

private let demoService = "com.weibo.motan.demo.service.MotanDemoService"
private let demoGroup = "motan-demo-rpc"
private let phpService = "com.weibo.HelloMTService"
private let gzipArgument = SimpleValue.string(String(repeating: "gzip", count: 8))
private let gzipReply = SimpleValue.string("hello " + String(repeating: "gzip", count: 8))
private func notFound(_ method: String) -> MotanErrorInfo {
    MotanErrorInfo(errcode: 500, errmsg: "method \(method) is not found in provider.", errtype: 1)
}
private func phpRequestMeta(service: String, method: String, id: Int) -> [MetaPair] {
    [
        MetaPair("M_p", service), MetaPair("M_m", method), MetaPair("M_g", demoGroup),
        MetaPair("M_pp", "motan2"), MetaPair("requestIdFromClient", String(id)),
        MetaPair("SERIALIZATION", "simple"),
    ]
}
private let goClientMeta = [
    MetaPair("M_p", demoService), MetaPair("M_g", demoGroup), MetaPair("M_m", "hello"),
    MetaPair("M_pp", "motan2"), MetaPair("M_s", "peer-client"),
]
private let processTime0 = [MetaPair("M_pt", "0")]
private let edgeRequestMeta = [MetaPair("M_p", demoService), MetaPair("M_m", "Hello")]

let vectorExpectations: [VectorExpectation] = [
    .init(
        name: "go2go_01_request_simple_string", size: 139, flags: 0x00, requestID: 0x18eb_0577_2d00_0001,
        meta: goClientMeta, metaOrderIsRandom: true, values: ["testmsg"]),
    .init(
        name: "go2go_02_response_simple_string", size: 45, flags: 0x01, requestID: 0x18eb_0577_2d00_0001,
        meta: processTime0, values: ["hello testmsg"]),
    .init(
        name: "go2go_03_request_unknown_method", size: 142, flags: 0x00, requestID: 0x18eb_0577_3900_0002,
        meta: goClientMeta.map { $0.key == "M_m" ? MetaPair("M_m", "notExist") : $0 }, metaOrderIsRandom: true,
        values: ["testmsg"]),
    .init(
        name: "go2go_04_response_exception_unknown_method", size: 112, flags: 0x01, status: 1,
        requestID: 0x18eb_0577_3900_0002,
        meta: processTime0 + [MetaPair("M_e", notFound("notExist").json)], metaOrderIsRandom: true,
        error: notFound("notExist")),
    .init(
        name: "go2go_05_request_gzip", size: 187, flags: 0x08, requestID: 0x18eb_0577_4500_0003,
        meta: goClientMeta.map { $0.key == "M_p" ? MetaPair("M_p", demoService + "Gz") : $0 },
        metaOrderIsRandom: true, values: [gzipArgument]),
    .init(
        name: "go2go_06_response_gzip", size: 94, flags: 0x09, requestID: 0x18eb_0577_4500_0003,
        meta: processTime0, values: [gzipReply]),
    .init(name: "go2go_07_heartbeat_request", size: 21, flags: 0x12, requestID: 0x18eb_0577_5110_0004),
    .init(name: "go2go_08_heartbeat_response", size: 21, flags: 0x13, requestID: 0x18eb_0577_5110_0004),
    .init(name: "go2go_09_keepalive_heartbeat_request", size: 21, flags: 0x12, requestID: 0x18eb_0582_2530_0004),
    .init(name: "go2go_10_keepalive_heartbeat_response", size: 21, flags: 0x13, requestID: 0x18eb_0582_2530_0004),
    .init(
        name: "php2go_01_request_simple_string", size: 166, flags: 0x00, requestID: 7,
        meta: phpRequestMeta(service: demoService, method: "Hello", id: 7), values: ["testmsg"]),
    .init(
        name: "php2go_02_response_simple_string", size: 45, flags: 0x01, requestID: 7, meta: processTime0,
        values: ["hello testmsg"]),
    .init(
        name: "php2go_03_request_unknown_method", flags: 0x00, requestID: 8,
        meta: phpRequestMeta(service: demoService, method: "notExist", id: 8), values: ["testmsg"]),
    .init(
        name: "php2go_04_response_exception_unknown_method", flags: 0x01, status: 1, requestID: 8,
        meta: [MetaPair("M_e", notFound("notExist").json)] + processTime0, metaOrderIsRandom: true,
        error: notFound("notExist")),
    .init(
        name: "php2go_05_request_to_gzip_service", size: 193, flags: 0x00, requestID: 9,
        meta: phpRequestMeta(service: demoService + "Gz", method: "Hello", id: 9), values: [gzipArgument]),
    .init(
        name: "php2go_06_response_gzip", size: 94, flags: 0x09, requestID: 9, meta: processTime0,
        values: [gzipReply]),
    .init(name: "php2go_07_heartbeat_request", size: 21, flags: 0x12, requestID: 2),
    .init(name: "php2go_08_heartbeat_response", size: 21, flags: 0x13, requestID: 2),
    .init(
        name: "php2go_09_request_unknown_service", flags: 0x00, requestID: 10,
        meta: phpRequestMeta(service: "com.weibo.NoSuchService", method: "Hello", id: 10), values: ["testmsg"]),
    .init(
        name: "php2go_10_response_exception_provider_not_exist", size: 124, flags: 0x01, status: 1,
        requestID: 10,
        meta: processTime0 + [
            MetaPair(
                "M_e",
                #"{"errcode":404,"errmsg":"provider not exist serviceKey=com.weibo.NoSuchService","errtype":1}"#)
        ], metaOrderIsRandom: true,
        error: MotanErrorInfo(errcode: 404, errmsg: "provider not exist serviceKey=com.weibo.NoSuchService", errtype: 1)
    ),
    .init(
        name: "php2phpmock_01_request_simple_string", flags: 0x00, requestID: 1,
        meta: phpRequestMeta(service: phpService, method: "Hello", id: 1), values: ["testmsg"]),
    .init(
        name: "php2phpmock_02_response_simple_string", flags: 0x01, requestID: 1,
        meta: phpRequestMeta(service: phpService, method: "Hello", id: 1), values: ["hello testmsg"]),
    .init(
        name: "php2phpmock_03_request_unknown_method", flags: 0x00, requestID: 2,
        meta: phpRequestMeta(service: phpService, method: "HelloX", id: 2), values: ["testmsg"]),
    .init(
        name: "php2phpmock_04_response_exception", flags: 0x01, status: 1, requestID: 2,
        meta: phpRequestMeta(service: phpService, method: "HelloX", id: 2) + [
            MetaPair("M_e", notFound("HelloX").json)
        ], error: notFound("HelloX")),
    .init(
        name: "gen_go_request_simple_string", flags: 0x00, requestID: 1,
        meta: [
            MetaPair("M_p", demoService), MetaPair("M_m", "Hello"), MetaPair("M_g", demoGroup),
            MetaPair("M_pp", "motan2"),
        ], metaOrderIsRandom: true, values: ["testmsg"]),
    .init(
        name: "gen_go_response_simple_string", flags: 0x01, requestID: 1, meta: processTime0,
        values: ["hello testmsg"]),
    .init(name: "gen_go_heartbeat_request", size: 21, flags: 0x12, requestID: 2),
    .init(name: "gen_go_heartbeat_response", size: 21, flags: 0x13, requestID: 2),
    .init(
        name: "gen_go_exception_response", flags: 0x01, status: 1, requestID: 3,
        meta: [MetaPair("M_e", notFound("notExist").json)], error: notFound("notExist")),
    .init(
        name: "gen_go_protocol_exception_response", flags: 0x01, status: 1, requestID: 4,
        meta: [MetaPair("M_e", #"{"errcode":500,"errmsg":"deserialize fail.","errtype":1}"#)],
        error: MotanErrorInfo(errcode: 500, errmsg: "deserialize fail.", errtype: 1)),
    .init(
        name: "gen_go_request_gzip", flags: 0x08, requestID: 5,
        meta: [MetaPair("M_m", "Hello"), MetaPair("M_pp", "motan2"), MetaPair("M_p", demoService + "Gz")],
        metaOrderIsRandom: true, values: [gzipArgument]),
    .init(
        name: "gen_php_request_simple_string", flags: 0x00, requestID: 1,
        meta: phpRequestMeta(service: phpService, method: "Hello", id: 1), values: ["testmsg"]),
    .init(name: "gen_php_heartbeat_request", size: 21, flags: 0x12, requestID: 2),
    .init(
        name: "gen_php_exception_response", flags: 0x01, status: 1, requestID: 3,
        meta: [MetaPair("M_p", phpService), MetaPair("M_m", "HelloX"), MetaPair("M_e", notFound("HelloX").json)],
        error: notFound("HelloX")),
    .init(name: "go_server_edge_heartbeat_no_proxy_bit_request", size: 21, flags: 0x10, requestID: 0x29),
    .init(name: "go_server_edge_heartbeat_no_proxy_bit_response", size: 21, flags: 0x13, requestID: 0x29),
    .init(
        name: "go_server_edge_heartbeat_with_meta_and_body_request", flags: 0x12, requestID: 0x2a,
        meta: [MetaPair("k", "v")], values: ["testmsg"]),
    .init(name: "go_server_edge_heartbeat_with_meta_and_body_response", size: 21, flags: 0x13, requestID: 0x2a),
    .init(
        name: "go_server_edge_request_meta_trailing_newline_request", flags: 0x00, requestID: 0x2e,
        meta: edgeRequestMeta, values: ["testmsg"]),
    .init(
        name: "go_server_edge_request_meta_trailing_newline_response", flags: 0x01, requestID: 0x2e,
        meta: processTime0, values: ["hello testmsg"]),
    .init(name: "go_server_edge_request_no_body_request", flags: 0x00, requestID: 0x2b, meta: edgeRequestMeta),
    .init(
        name: "go_server_edge_request_no_body_response", flags: 0x01, status: 1, requestID: 0x2b,
        meta: [
            MetaPair("M_e", #"{"errcode":500,"errmsg":"provider call panic","errtype":1}"#), MetaPair("M_pt", "0"),
        ], metaOrderIsRandom: true,
        error: MotanErrorInfo(errcode: 500, errmsg: "provider call panic", errtype: 1)),
    .init(
        name: "go_server_edge_request_oneway_flag_request", flags: 0x04, requestID: 0x2c, meta: edgeRequestMeta,
        values: ["testmsg"]),
    .init(
        name: "go_server_edge_request_oneway_flag_response", flags: 0x01, requestID: 0x2c, meta: processTime0,
        values: ["hello testmsg"]),
    .init(
        name: "go_server_edge_request_serialization_0_request", flags: 0x00, serialization: 0,
        requestID: 0x2d, meta: edgeRequestMeta, values: ["testmsg"]),
    .init(
        name: "go_server_edge_request_serialization_0_response", flags: 0x01, status: 1, requestID: 0x2d,
        meta: [
            MetaPair(
                "M_e",
                #"{"errcode":500,"errmsg":"deserialize fail. err:message serialize not found method:Hello","errtype":1}"#
            )
        ],
        error: MotanErrorInfo(
            errcode: 500, errmsg: "deserialize fail. err:message serialize not found method:Hello", errtype: 1)),
    .init(
        name: "go_server_edge_request_two_args_one_param_request", flags: 0x00, requestID: 0x32,
        meta: edgeRequestMeta, values: ["testmsg", "testmsg"]),
    .init(
        name: "go_server_edge_request_two_args_one_param_response", flags: 0x01, requestID: 0x32,
        meta: processTime0, values: ["hello testmsg"]),
]

/// Frames the motan-go server refused: the decoder must refuse them too, with the same reason.
let rejectedVectors: [(name: String, error: MotanCodecError)] = [
    ("go_server_edge_request_bad_magic_request", .badMagic(found: 0xF1F2, offset: 0)),
    ("go_server_edge_request_version_2_request", .unsupportedVersion(2, offset: 3)),
    ("go_server_edge_request_unpaired_meta_request", .unpairedMeta(fieldCount: 5, offset: 17)),
]

@Suite(.enabled(if: GoldenVectors.isAvailable, "golden vectors directory not found"))
struct GoldenVectorTests {
    @Test func everyVectorFileIsCovered() {
        let covered = Set(vectorExpectations.map(\.name) + rejectedVectors.map(\.name))
        let files = Set(GoldenVectors.fileNames())
        #expect(files.subtracting(covered).isEmpty, "vectors without expectations")
        #expect(covered.subtracting(files).isEmpty, "expectations without vectors")
    }

    @Test(arguments: vectorExpectations)
    func decodesToDescribedFields(_ expected: VectorExpectation) throws {
        let bytes = GoldenVectors.bytes(expected.name)
        if let size = expected.size { #expect(bytes.count == size) }
        let frame = try decodeOne(bytes)

        #expect(frame.header.flags.rawValue == expected.flags)
        #expect(frame.header.version == 1)
        #expect(frame.header.status == expected.status)
        #expect(frame.header.serialization == expected.serialization)
        #expect(frame.header.requestID == expected.requestID)
        #expect(frame.isHeartbeat == (expected.flags & 0x10 != 0))
        if expected.metaOrderIsRandom {
            #expect(Set(pairs(frame.meta)) == Set(expected.meta))
            #expect(pairs(frame.meta).count == expected.meta.count)
        } else {
            #expect(pairs(frame.meta) == expected.meta)
        }
        #expect(try frame.decodedValues() == expected.values)
        #expect(frame.errorInfo == expected.error)
    }

    @Test(arguments: vectorExpectations)
    func reencodesToTheSameBytes(_ expected: VectorExpectation) throws {
        var bytes = GoldenVectors.bytes(expected.name)
        let frame = try decodeOne(bytes)
        if expected.name == "go_server_edge_request_meta_trailing_newline_request" {
            // We never send the trailing LF: the re-encoded meta is one byte shorter.
            #expect(bytes[17 + 0x3c - 1] == 0x0A)
            bytes.remove(at: 17 + 0x3c - 1)
            bytes[16] = 0x3b
        }
        #expect(hexString(encoded(frame)) == hexString(bytes))
    }

    @Test(arguments: vectorExpectations)
    func borrowedViewAgreesWithOwnedFrame(_ expected: VectorExpectation) throws {
        let bytes = GoldenVectors.bytes(expected.name)
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        let seen = try decoder.withNext { view in
            (
                view.makeFrame(), view.header, Array(view.body),
                expected.meta.map { view.metaString(forKey: $0.key) }
            )
        }
        let (frame, header, body, values) = try #require(seen)
        #expect(frame == (try decodeOne(bytes)))
        #expect(header == frame.header)
        #expect(body == frame.body)
        #expect(values == expected.meta.map { Optional($0.value) })
    }

    @Test(arguments: zip(rejectedVectors.map(\.name), rejectedVectors.map(\.error)))
    func rejectsWhatTheGoServerRejects(_ name: String, _ error: MotanCodecError) {
        let bytes = GoldenVectors.bytes(name)
        let oneByOne = decodeStream(bytes, chunks: [1])
        #expect(oneByOne.frames.isEmpty)
        #expect(oneByOne.error == error)
        #expect(decodeStream(bytes, chunks: []).error == error)
    }

    @Test func wholeCaptureFedOneByteAtATime() {
        let names = vectorExpectations.map(\.name)
        let stream = names.flatMap { GoldenVectors.bytes($0) }
        let result = decodeStream(stream, chunks: [1])
        #expect(result.error == nil)
        #expect(result.frames.map(\.requestID) == vectorExpectations.map(\.requestID))
        let wholes = names.map { try? decodeOne(GoldenVectors.bytes($0)) }
        #expect(result.frames.map { Optional($0) } == wholes)
    }

    // MARK: Our own frames against the captures

    @Test func builtRequestMatchesGoClientCapture() throws {
        let captured = try decodeOne(GoldenVectors.bytes("go2go_01_request_simple_string"))
        let built = Frame.request(
            requestID: captured.requestID, service: demoService, method: "hello", group: demoGroup,
            arguments: ["testmsg"], extraMeta: ["M_pp": "motan2", "M_s": "peer-client"])
        let bytes = encoded(built)
        #expect(bytes.count == 139)
        #expect(Array(bytes[0..<17]) == Array(GoldenVectors.bytes("go2go_01_request_simple_string")[0..<17]))
        #expect(Set(pairs(built.meta)) == Set(pairs(captured.meta)))
        #expect(Array(pairs(built.meta).prefix(2)) == [MetaPair("M_p", demoService), MetaPair("M_m", "hello")])
        #expect(built.body == captured.body)
    }

    @Test func builtResponsesAndHeartbeatsMatchByteForByte() throws {
        let cases: [(String, Frame)] = [
            ("go2go_02_response_simple_string", .response(requestID: 0x18eb_0577_2d00_0001, value: "hello testmsg")),
            ("gen_go_response_simple_string", .response(requestID: 1, value: "hello testmsg", processTime: 0)),
            (
                "go2go_04_response_exception_unknown_method",
                .errorResponse(requestID: 0x18eb_0577_3900_0002, error: notFound("notExist"))
            ),
            (
                "php2go_10_response_exception_provider_not_exist",
                .errorResponse(
                    requestID: 10,
                    error: MotanErrorInfo(
                        errcode: 404, errmsg: "provider not exist serviceKey=com.weibo.NoSuchService", errtype: 1))
            ),
            ("gen_go_exception_response", .errorResponse(requestID: 3, error: notFound("notExist"), processTime: nil)),
            ("go2go_07_heartbeat_request", .heartbeatRequest(requestID: 0x18eb_0577_5110_0004)),
            ("go2go_08_heartbeat_response", .heartbeatResponse(requestID: 0x18eb_0577_5110_0004)),
            ("gen_php_heartbeat_request", .heartbeatRequest(requestID: 2)),
            ("go_server_edge_heartbeat_no_proxy_bit_response", .heartbeatResponse(requestID: 0x29)),
        ]
        for (name, frame) in cases {
            #expect(hexString(encoded(frame)) == hexString(GoldenVectors.bytes(name)), "\(name)")
        }
    }

    @Test func allocationFreeEncodersMatchTheCaptures() {
        var output: [UInt8] = []
        FrameEncoder.encodeHeartbeatRequest(requestID: 2, into: &output)
        #expect(output == GoldenVectors.bytes("gen_go_heartbeat_request"))
        output.removeAll(keepingCapacity: true)
        FrameEncoder.encodeHeartbeatResponse(requestID: 2, into: &output)
        #expect(output == GoldenVectors.bytes("gen_go_heartbeat_response"))
        output.removeAll(keepingCapacity: true)
        FrameEncoder.encodeResponse(
            requestID: 7, processTime: 0, body: SimpleSerialization.encode(["hello testmsg"]), into: &output)
        #expect(output == GoldenVectors.bytes("php2go_02_response_simple_string"))
        output.removeAll(keepingCapacity: true)
        FrameEncoder.encodeErrorResponse(requestID: 8, error: notFound("notExist"), into: &output)
        let php04 = try? decodeOne(GoldenVectors.bytes("php2go_04_response_exception_unknown_method"))
        let ours = try? decodeOne(output)
        #expect(ours?.header == php04?.header)
        #expect(ours.map { Set(pairs($0.meta)) } == php04.map { Set(pairs($0.meta)) })
        output.removeAll(keepingCapacity: true)
        FrameEncoder.encodeRequest(
            requestID: 1, service: demoService, method: "Hello", group: demoGroup, extraMeta: ["M_pp": "motan2"],
            into: &output
        ) { SimpleSerialization.appendString("testmsg", into: &$0) }
        #expect(output == GoldenVectors.bytes("gen_go_request_simple_string").reorderedMetaLike(output))
    }

    @Test func gzipFramesMatchAfterInflating() throws {
        let request = try decodeOne(GoldenVectors.bytes("go2go_05_request_gzip"))
        let built = Frame.request(
            requestID: request.requestID, service: demoService + "Gz", method: "hello", group: demoGroup,
            arguments: [gzipArgument], extraMeta: ["M_pp": "motan2", "M_s": "peer-client"], gzipAbove: 16)
        #expect(built.header == request.header)
        #expect(Set(pairs(built.meta)) == Set(pairs(request.meta)))
        #expect(try built.decodedBody() == request.decodedBody())
        #expect(try request.decodedBody().count == 37)
        #expect(request.body.count == 58)

        let response = try decodeOne(GoldenVectors.bytes("go2go_06_response_gzip"))
        let reply = Frame.response(requestID: response.requestID, value: gzipReply, gzipAbove: 16)
        #expect(reply.header == response.header)
        #expect(reply.meta == response.meta)
        #expect(try reply.decodedBody() == response.decodedBody())
        // Nothing compressed at or below the threshold.
        #expect(Frame.response(requestID: 1, value: gzipReply, gzipAbove: 43).header.flags == .response)
        #expect(Frame.response(requestID: 1, value: gzipReply, gzipAbove: 42).header.flags == [.response, .gzip])
    }
}

extension Array where Element == UInt8 {
    /// The motan-go encoder's meta order is random; rebuilds this frame with `other`'s meta
    /// order when both hold the same pairs, so byte comparison checks everything else.
    func reorderedMetaLike(_ other: [UInt8]) -> [UInt8] {
        guard let mine = try? decodeOne(self), var theirs = try? decodeOne(other),
            Set(pairs(mine.meta)) == Set(pairs(theirs.meta))
        else { return self }
        theirs.header = mine.header
        theirs.body = mine.body
        return encoded(theirs)
    }
}
