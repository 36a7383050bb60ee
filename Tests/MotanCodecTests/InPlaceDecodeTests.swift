import Testing

@testable import MotanCodec

/// `FrameDecoder.decode(_:_:)` lends frames where they lie in the caller's bytes and keeps only
/// leftovers; it must see exactly what `feed` + `next` sees, for every split of the stream.
@Suite struct InPlaceDecodeTests {
    /// Three requests, a heartbeat and a response, with metas of every routing shape.
    static let stream: [UInt8] = {
        var bytes: [UInt8] = []
        var extra = Meta()
        extra.append("k", "v")
        FrameEncoder.encode(
            Frame.request(
                requestID: 1, service: "svc.A", method: "echo", group: "g1", arguments: [.string("one")],
                extraMeta: extra), into: &bytes)
        FrameEncoder.encodeHeartbeatRequest(requestID: 2, into: &bytes)
        FrameEncoder.encode(
            Frame.request(
                requestID: 3, service: "svc.B", method: "m", arguments: [.string(String(repeating: "x", count: 300))]),
            into: &bytes)
        FrameEncoder.encode(Frame.response(requestID: 4, value: .int64(7)), into: &bytes)
        FrameEncoder.encode(Frame.request(requestID: 5, service: "s", method: "", arguments: []), into: &bytes)
        return bytes
    }()

    struct Seen: Equatable {
        var frame: Frame
        var offset: Int
        var service: String?
        var method: String?
        var group: String?
    }

    static func seen(_ view: FrameView) -> Seen {
        Seen(
            frame: view.makeFrame(), offset: view.streamOffset, service: view.service, method: view.method,
            group: view.group)
    }

    /// What the buffered path sees.
    static func reference(_ bytes: [UInt8]) -> (frames: [Seen], error: MotanCodecError?) {
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        var seen: [Seen] = []
        do {
            while let next = try decoder.withNext({ Self.seen($0) }) { seen.append(next) }
            try decoder.finish()
        } catch {
            return (seen, error)
        }
        return (seen, nil)
    }

    /// What `decode` sees when the stream arrives in pieces of the given sizes.
    static func inPlace(_ bytes: [UInt8], chunks: [Int]) -> (frames: [Seen], error: MotanCodecError?) {
        var decoder = FrameDecoder()
        var seen: [Seen] = []
        var position = 0
        var index = 0
        do {
            while position < bytes.count {
                let size = max(1, chunks[index % chunks.count])
                index += 1
                let end = min(bytes.count, position + size)
                try decodePiece(&decoder, Array(bytes[position..<end])) { view in
                    seen.append(Self.seen(view))
                    return true
                }
                position = end
                #expect(decoder.bufferedByteCount < 21 + 400, "keeps more than a partial frame")
            }
            try decoder.finish()
        } catch {
            return (seen, error)
        }
        return (seen, nil)
    }

    @Test func everySplitSeesWhatTheBufferedPathSees() {
        let expected = Self.reference(Self.stream)
        #expect(expected.frames.count == 5)
        #expect(expected.error == nil)
        for size in [1, 2, 3, 5, 16, 17, 20, 21, 64, 97, 400, Self.stream.count] {
            let got = Self.inPlace(Self.stream, chunks: [size])
            #expect(got.frames == expected.frames, "pieces of \(size)")
            #expect(got.error == nil, "pieces of \(size)")
        }
        let uneven = Self.inPlace(Self.stream, chunks: [7, 180, 1, 33, 500])
        #expect(uneven.frames == expected.frames)
    }

    @Test func routingValuesMatchTheLastPairOfEachKey() {
        let frames = Self.reference(Self.stream).frames
        #expect(frames[0].service == "svc.A" && frames[0].method == "echo" && frames[0].group == "g1")
        #expect(frames[1].service == nil && frames[1].method == nil)
        #expect(frames[2].group == nil)
        var meta: [UInt8] = []
        meta.append(contentsOf: "M_p\nfirst\nM_m\nx\nM_pp\nno\nM_p\nsecond\nM_g\n\n".utf8)
        let shape = meta.withUnsafeBytes { MetaBytes.shape(of: $0) }
        #expect(shape.fieldCount == 10)
        #expect(shape.hasEmptyField)
        #expect(shape.length == meta.count - 1)
        meta.withUnsafeBytes { raw in
            #expect(shape.service.map { MetaBytes.string(raw, $0) } == "second")
            #expect(shape.method.map { MetaBytes.string(raw, $0) } == "x")
            #expect(shape.group.map { MetaBytes.string(raw, $0) } == "")
            let block = UnsafeRawBufferPointer(rebasing: raw[0..<shape.length])
            #expect(MetaBytes.lastValue(forKey: "M_p", in: block) == shape.service)
        }
    }

    @Test func errorsCarryTheSameOffsetsAsTheBufferedPath() {
        var bad = Self.stream
        bad.append(contentsOf: [0xF1, 0xF1, 0x00, 0x08, 0x30, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0x41, 0, 0, 0, 0])
        bad.append(contentsOf: [0xAB, 0xCD])
        let expected = Self.reference(bad)
        #expect(expected.error != nil)
        for size in [1, 4, 21, 100, bad.count] {
            let got = Self.inPlace(bad, chunks: [size])
            #expect(got.frames == expected.frames, "pieces of \(size)")
            #expect(got.error == expected.error, "pieces of \(size)")
        }
    }

    @Test func stoppingKeepsTheRestForLater() throws {
        var decoder = FrameDecoder()
        var first: [UInt64] = []
        try decodePiece(&decoder, Self.stream) { view in
            first.append(view.requestID)
            return view.requestID < 2
        }
        #expect(first == [1, 2])
        var rest: [UInt64] = []
        while let id = try decoder.withNext({ $0.requestID }) { rest.append(id) }
        #expect(rest == [3, 4, 5])
        #expect(decoder.bufferedByteCount == 0)
        #expect(decoder.streamOffset == Self.stream.count)
    }

    @Test func aFrameLargerThanTheReadIsCompletedFromBufferedBytes() throws {
        let big = encoded(
            Frame.request(
                requestID: 9, service: "s", method: "m", arguments: [.bytes([UInt8](repeating: 1, count: 5000))]))
        var decoder = FrameDecoder()
        var ids: [UInt64] = []
        let stream = big + Self.stream
        // A frame split over many reads, then whole frames in the read that completes it.
        for start in stride(from: 0, to: stream.count, by: 1000) {
            try decodePiece(&decoder, Array(stream[start..<min(stream.count, start + 1000)])) { view in
                ids.append(view.requestID)
                return true
            }
        }
        #expect(ids == [9, 1, 2, 3, 4, 5])
        #expect(decoder.bufferedByteCount == 0)
    }
}

/// `decode` with its typed error kept (`withUnsafeBytes` would erase it).
func decodePiece(
    _ decoder: inout FrameDecoder, _ piece: [UInt8], _ body: (FrameView) -> Bool
) throws(MotanCodecError) {
    let outcome: Result<Void, MotanCodecError> = piece.withUnsafeBytes { raw in
        Result { () throws(MotanCodecError) in try decoder.decode(raw, body) }
    }
    try outcome.get()
}

@Suite struct InPlaceEncodeTests {
    @Test(arguments: [0, 7, 10, 12345, -3])
    func responseHeadMatchesTheArrayEncoder(processTime: Int) {
        let body: [UInt8] = [1, 0, 0, 0, 2, 0x41, 0x42]
        for gzipped in [false, true] {
            var expected: [UInt8] = []
            FrameEncoder.encodeResponse(requestID: 0x0102_0304_0506_0708, processTime: processTime, into: &expected) {
                $0.append(contentsOf: body)
            }
            if gzipped { expected[2] |= MessageFlags.gzip.rawValue }
            let size = FrameEncoder.responseOverhead(processTime: processTime)
            var written = [UInt8](repeating: 0xEE, count: size + body.count)
            let head = written.withUnsafeMutableBytes {
                FrameEncoder.writeResponseHead(
                    requestID: 0x0102_0304_0506_0708, processTime: processTime, bodyCount: body.count,
                    gzipped: gzipped, to: $0.baseAddress!)
            }
            #expect(head == size)
            written.replaceSubrange(head..., with: body)
            #expect(written == expected, "processTime \(processTime) gzip \(gzipped)")
        }
    }

    @Test func heartbeatResponseMatchesTheArrayEncoder() {
        var expected: [UInt8] = []
        FrameEncoder.encodeHeartbeatResponse(requestID: 42, into: &expected)
        var written = [UInt8](repeating: 0xEE, count: FrameEncoder.heartbeatResponseSize)
        let count = written.withUnsafeMutableBytes {
            FrameEncoder.writeHeartbeatResponse(requestID: 42, to: $0.baseAddress!)
        }
        #expect(count == expected.count)
        #expect(written == expected)
    }

    @Test(arguments: ["com.weibo.NoSuchService", "", "quote\"back\\slash\ttab", "naïve ✓"])
    func errorFromPiecesMatchesTheStringEncoder(name: String) {
        for processTime in [0, nil] as [Int?] {
            var expected: [UInt8] = []
            FrameEncoder.encodeErrorResponse(
                requestID: 9, error: MotanErrorInfo(errcode: 500, errmsg: "method \(name) is not found.", errtype: 1),
                processTime: processTime, into: &expected)
            var written: [UInt8] = []
            Array(name.utf8).withUnsafeBytes {
                FrameEncoder.encodeErrorResponse(
                    requestID: 9, errcode: 500, errtype: 1, messagePrefix: "method ", messageMiddle: $0,
                    messageSuffix: " is not found.", processTime: processTime, into: &written)
            }
            #expect(written == expected, "\(name)")
        }
        // Bytes that are not UTF-8 come out as a String made from them would.
        let invalid: [UInt8] = [0x61, 0xFF, 0x62]
        var expected: [UInt8] = []
        FrameEncoder.encodeErrorResponse(
            requestID: 9,
            error: MotanErrorInfo(errcode: 404, errmsg: "x=" + String(decoding: invalid, as: UTF8.self), errtype: 1),
            into: &expected)
        var written: [UInt8] = []
        invalid.withUnsafeBytes {
            FrameEncoder.encodeErrorResponse(
                requestID: 9, errcode: 404, errtype: 1, messagePrefix: "x=", messageMiddle: $0, messageSuffix: "",
                into: &written)
        }
        #expect(written == expected)
    }
}
