import Testing

@testable import MotanCodec

/// One context, many operations: reset streams must behave exactly like fresh ones.
struct GzipContextTests {
    /// Deterministic text-like data of `count` bytes.
    static func sample(_ count: Int, seed: UInt32) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(ascii: "a") + UInt8((state >> 16) % 8)
        }
    }

    private func failure(_ body: () throws(MotanCodecError) -> Void) -> MotanCodecError? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func roundTripsManyTimesWithInterleavedSizes() throws {
        let context = GzipContext()
        let sizes = [0, 1, 100, 70_000, 16 * 1024, 3, 120_000, 512, 0, 65_536]
        for round in 0..<30 {
            let size = sizes[round % sizes.count]
            let data = Self.sample(size, seed: UInt32(round))
            let compressed = try context.compress(data)
            // Both directions agree with the one-shot API.
            #expect(try Gzip.decompress(compressed, maxOutput: size) == data, "round \(round)")
            #expect(try context.decompress(try Gzip.compress(data), maxOutput: size) == data, "round \(round)")
            #expect(try context.decompress(compressed, maxOutput: size) == data, "round \(round)")
            let length = try compressed.withBytes { (bytes) throws(MotanCodecError) in
                try context.withDecompressed(bytes, maxOutput: size) { (inflated) throws(MotanCodecError) in
                    #expect(inflated.elementsEqual(data), "round \(round)")
                    return inflated.count
                }
            }
            #expect(length == size)
        }
    }

    @Test func appendsToTheCallersBuffers() throws {
        let context = GzipContext(level: 9)
        let data = Self.sample(5000, seed: 1)
        var compressed: [UInt8] = [9, 9]
        try data.withBytes { (bytes) throws(MotanCodecError) in try context.compress(bytes, into: &compressed) }
        #expect(Array(compressed.prefix(4)) == [9, 9, 0x1F, 0x8B])
        var inflated: [UInt8] = [1]
        try Array(compressed.dropFirst(2)).withBytes { (bytes) throws(MotanCodecError) in
            try context.decompress(bytes, maxOutput: 5000, into: &inflated)
        }
        #expect(inflated == [1] + data)
    }

    @Test func errorsLeaveTheContextAndTheBufferUsable() throws {
        let context = GzipContext()
        let data = Self.sample(20_000, seed: 7)
        let good = try context.compress(data)
        var flipped = good
        flipped[good.count - 5] ^= 0xFF  // CRC
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: 4 << 20))
        let bad: [(name: String, bytes: [UInt8], error: MotanCodecError?)] = [
            ("truncated", Array(good.dropLast(4)), .gzipTruncated(offset: good.count - 4)),
            ("not gzip", data, nil),
            ("bad crc", flipped, nil),
            ("trailing garbage", good + [0, 0, 0], nil),
            ("bomb", bomb, .gzipOutputTooLarge(limit: 1 << 20)),
            ("empty", [], .gzipTruncated(offset: 0)),
        ]
        for (name, bytes, expected) in bad {
            var output: [UInt8] = [42]
            let error = failure { () throws(MotanCodecError) in
                try bytes.withBytes { (raw) throws(MotanCodecError) in
                    try context.decompress(raw, maxOutput: 1 << 20, into: &output)
                }
            }
            #expect(error != nil, "\(name)")
            if let expected { #expect(error == expected, "\(name)") }
            // Counts only: a failing comparison of a megabyte array would print all of it.
            #expect(output.count == 1 && output.first == 42, "\(name): output changed on failure")
            // The very next operations on the same context succeed.
            #expect(try context.decompress(good, maxOutput: data.count) == data, "after \(name)")
            #expect(try Gzip.decompress(try context.compress(data), maxOutput: data.count) == data, "after \(name)")
        }
        // A failure inside withDecompressed's body does not poison its buffer either.
        let thrown = failure { () throws(MotanCodecError) in
            _ = try good.withBytes { (raw) throws(MotanCodecError) in
                try context.withDecompressed(raw, maxOutput: data.count) { (_) throws(MotanCodecError) -> Int in
                    throw .simpleVarintOverflow(offset: 0)
                }
            }
        }
        #expect(thrown == .simpleVarintOverflow(offset: 0))
        #expect(try context.decompress(good, maxOutput: data.count) == data)
    }

    @Test func concatenatedMembersAndNestedUse() throws {
        let context = GzipContext()
        let joined = try context.compress(Array("ab".utf8)) + context.compress(Array("cd".utf8))
        #expect(try context.decompress(joined, maxOutput: 4) == Array("abcd".utf8))
        #expect(throws: MotanCodecError.gzipOutputTooLarge(limit: 3)) { try context.decompress(joined, maxOutput: 3) }
        // The body of withDecompressed may use the same context again.
        let inner = try context.compress(Array("inner".utf8))
        let outer = try context.compress(inner)
        let text = try outer.withBytes { (raw) throws(MotanCodecError) in
            try context.withDecompressed(raw, maxOutput: 1000) { (once) throws(MotanCodecError) in
                try context.withDecompressed(once, maxOutput: 1000) { (twice) throws(MotanCodecError) in
                    String(decoding: twice, as: UTF8.self)
                }
            }
        }
        #expect(text == "inner")
    }

    @Test func responseEncoderUsesTheContext() throws {
        let context = GzipContext()
        let body = SimpleSerialization.encode([.string(String(repeating: "z", count: 5000))])
        for requestID in UInt64(1)...5 {
            var output: [UInt8] = []
            FrameEncoder.encodeResponse(
                requestID: requestID, processTime: 1, body: body, mingzSize: 100, gzip: context, into: &output)
            let frame = try decodeOne(output)
            #expect(frame.header.isGzipped)
            #expect(try frame.decodedBody() == body)
            #expect(try frame.decodedValues(gzip: context) == [.string(String(repeating: "z", count: 5000))])
        }
    }
}
