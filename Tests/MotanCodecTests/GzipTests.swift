import Testing

@testable import MotanCodec

struct GzipTests {
    static let text = Array(String(repeating: "hello gzip ", count: 100).utf8)

    @Test func roundTrip() throws {
        let compressed = try Gzip.compress(Self.text)
        #expect(Array(compressed.prefix(2)) == [0x1F, 0x8B])
        #expect(compressed.count < Self.text.count)
        #expect(try Gzip.decompress(compressed, maxOutput: Self.text.count) == Self.text)
        #expect(try Gzip.decompress(try Gzip.compress([]), maxOutput: 0) == [])
    }

    @Test func compressAppendsToTheBuffer() throws {
        var output: [UInt8] = [1, 2, 3]
        let failure = Self.text.withUnsafeBytes { bytes -> MotanCodecError? in
            do throws(MotanCodecError) {
                try Gzip.compress(bytes, level: 9, into: &output)
                return nil
            } catch {
                return error
            }
        }
        #expect(failure == nil)
        #expect(Array(output.prefix(3)) == [1, 2, 3])
        #expect(try Gzip.decompress(Array(output.dropFirst(3)), maxOutput: 1 << 20) == Self.text)
    }

    @Test func concatenatedMembersAreOneBody() throws {
        let joined = try Gzip.compress(Array("ab".utf8)) + Gzip.compress(Array("cd".utf8))
        #expect(try Gzip.decompress(joined, maxOutput: 100) == Array("abcd".utf8))
    }

    @Test func aSmallBombIsRejectedWithoutInflatingIt() throws {
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: 16 << 20))
        #expect(bomb.count < 100_000)
        #expect(throws: MotanCodecError.gzipOutputTooLarge(limit: 1 << 20)) {
            try Gzip.decompress(bomb, maxOutput: 1 << 20)
        }
    }

    @Test func theLimitItselfIsAllowed() throws {
        let data = [UInt8](repeating: 7, count: 5000)
        let compressed = try Gzip.compress(data)
        #expect(try Gzip.decompress(compressed, maxOutput: 5000) == data)
        #expect(throws: MotanCodecError.gzipOutputTooLarge(limit: 4999)) {
            try Gzip.decompress(compressed, maxOutput: 4999)
        }
    }

    @Test func truncatedAndCorruptInputFail() throws {
        let compressed = try Gzip.compress(Self.text)
        #expect(throws: MotanCodecError.gzipTruncated(offset: compressed.count - 4)) {
            try Gzip.decompress(Array(compressed.dropLast(4)), maxOutput: 1 << 20)
        }
        #expect(throws: MotanCodecError.gzipTruncated(offset: 0)) { try Gzip.decompress([], maxOutput: 10) }
        #expect(throws: MotanCodecError.self) { try Gzip.decompress(Self.text, maxOutput: 1 << 20) }
        var flipped = compressed
        flipped[compressed.count - 5] ^= 0xFF  // CRC
        #expect(throws: MotanCodecError.self) { try Gzip.decompress(flipped, maxOutput: 1 << 20) }
        #expect(throws: MotanCodecError.self) {
            try Gzip.decompress(compressed + [0, 0, 0], maxOutput: 1 << 20)
        }
    }

    @Test func gzipFlagWithBadBodyIsADecodeError() throws {
        var frame = Frame.response(requestID: 1, value: "x")
        frame.header.flags.insert(.gzip)
        #expect(throws: MotanCodecError.self) { try frame.decodedBody() }
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: 2 << 20))
        let bombFrame = Frame(
            header: FrameHeader(flags: [.response, .gzip], requestID: 1), meta: ["M_pt": "0"], body: bomb)
        #expect(throws: MotanCodecError.gzipOutputTooLarge(limit: 1 << 20)) {
            try bombFrame.decodedBody(maxContentLength: 1 << 20)
        }
    }

    @Test func responseEncoderCompressesOnlyAboveMingzSize() throws {
        let body = SimpleSerialization.encode([.string(String(repeating: "z", count: 100))])
        for (mingz, gzipped) in [(0, false), (body.count, false), (body.count - 1, true), (-1, false)] {
            var output: [UInt8] = []
            FrameEncoder.encodeResponse(requestID: 9, processTime: 1, body: body, mingzSize: mingz, into: &output)
            let frame = try decodeOne(output)
            #expect(frame.header.isGzipped == gzipped, "mingzSize \(mingz)")
            #expect(try frame.decodedBody() == body)
            #expect(frame.meta.processTime == "1")
        }
    }
}
