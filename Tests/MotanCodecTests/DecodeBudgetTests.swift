import Testing

@testable import MotanCodec

/// Decoding a body must not cost arbitrarily more memory than the body itself.
struct DecodeBudgetTests {
    static let limit = 1 << 20
    /// 1 MiB of tag 0: a million null values, each a slot of 16+ bytes once decoded.
    static let nulls = [UInt8](repeating: 0, count: limit)
    /// With the budget of a 1 MiB content limit, both limits fall on the same element.
    static let expected = MotanCodecError.simpleElementLimitExceeded(limit: limit / 8, offset: limit / 8)

    private func failure(_ body: () throws(MotanCodecError) -> [SimpleValue]) -> MotanCodecError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    /// The blow-up itself, measured without a budget: about 1 KiB of gzip is a million elements
    /// and, at the budget's charge per element, 32 MiB of values.
    @Test func withoutABudgetASmallGzipBodyExpandsThirtyThousandfold() throws {
        let compressed = try Self.nulls.withBytes { (bytes) throws(MotanCodecError) in
            var output: [UInt8] = []
            try Gzip.compress(bytes, level: 9, into: &output)
            return output
        }
        #expect(compressed.count < 1100)
        let inflated = try Gzip.decompress(compressed, maxOutput: Self.limit)
        let (elements, bytes) = inflated.withUnsafeBytes { raw in
            var reader = SimpleReader(bytes: raw, maxDepth: SimpleSerialization.defaultMaxDepth, budget: .unlimited)
            while reader.position < raw.count { _ = try? reader.readValue(end: raw.count, depth: 0) }
            return (reader.elementCount, reader.decodedBytes)
        }
        #expect(elements == Self.limit)
        #expect(bytes == 32 * Self.limit)
        #expect(bytes / compressed.count > 30_000)
    }

    @Test func aSmallGzipBodyOfNullsIsRefused() throws {
        let compressed = try Gzip.compress(Self.nulls)
        #expect(compressed.count < 8192)
        let frame = Frame(header: FrameHeader(flags: [.gzip], requestID: 1), body: compressed)
        #expect(
            failure { () throws(MotanCodecError) in try frame.decodedValues(maxContentLength: Self.limit) }
                == Self.expected)
        #expect(
            failure { () throws(MotanCodecError) in
                try frame.decodedValues(maxContentLength: Self.limit, gzip: GzipContext())
            } == Self.expected)
    }

    @Test func aPlainBodyOfTinyElementsIsRefused() throws {
        let frame = Frame(header: FrameHeader(requestID: 1), body: Self.nulls)
        #expect(
            failure { () throws(MotanCodecError) in try frame.decodedValues(maxContentLength: Self.limit) }
                == Self.expected)
        var decoder = FrameDecoder(maxContentLength: Self.limit)
        decoder.feed(encoded(frame))
        let viaView = try decoder.withNext { view in
            failure { () throws(MotanCodecError) in try view.decodedValues(maxContentLength: Self.limit) }
        }
        #expect(viaView == Self.expected)
    }

    @Test func elementLimitIsExact() throws {
        let budget = DecodeBudget(maxElements: 3, maxBytes: .max)
        #expect(try SimpleSerialization.decode([0, 0, 0], budget: budget) == [nil, nil, nil])
        #expect(throws: MotanCodecError.simpleElementLimitExceeded(limit: 3, offset: 3)) {
            try SimpleSerialization.decode([0, 0, 0, 0], budget: budget)
        }
        // A container and each of its elements count; the error points at the element's tag.
        #expect(throws: MotanCodecError.simpleElementLimitExceeded(limit: 2, offset: 6)) {
            try SimpleSerialization.decode(
                hex("15 00000002 00 00"), budget: DecodeBudget(maxElements: 2, maxBytes: .max))
        }
        // Strings inside a string map count one by one, at their length prefix.
        let stringMap = hex("02 0000000a 00000001 6b 00000001 76")
        #expect(try SimpleSerialization.decode(stringMap, budget: budget).count == 1)
        #expect(throws: MotanCodecError.simpleElementLimitExceeded(limit: 2, offset: 10)) {
            try SimpleSerialization.decode(stringMap, budget: DecodeBudget(maxElements: 2, maxBytes: .max))
        }
        #expect(throws: MotanCodecError.simpleElementLimitExceeded(limit: 1, offset: 5)) {
            try SimpleSerialization.decode(
                hex("04 0000000b 00000001 61 00000002 6263"), budget: DecodeBudget(maxElements: 1, maxBytes: .max))
        }
    }

    @Test func decodedSizeLimitCountsPayloadAndElements() throws {
        // null (32) + "hello" (32 + 5) = 69 bytes.
        let body = hex("00 01 00000005 68656c6c6f")
        #expect(
            try SimpleSerialization.decode(body, budget: DecodeBudget(maxElements: 10, maxBytes: 69)) == [nil, "hello"])
        #expect(throws: MotanCodecError.simpleDecodedSizeLimitExceeded(limit: 68, offset: 1)) {
            try SimpleSerialization.decode(body, budget: DecodeBudget(maxElements: 10, maxBytes: 68))
        }
        let bytes = hex("03 00000100") + [UInt8](repeating: 7, count: 256)
        #expect(throws: MotanCodecError.simpleDecodedSizeLimitExceeded(limit: 200, offset: 0)) {
            try SimpleSerialization.decode(bytes, budget: DecodeBudget(maxElements: 10, maxBytes: 200))
        }
        // A truncated length is reported as such, not as a budget error.
        #expect(throws: MotanCodecError.simpleTruncated(needed: 0xFFFF_FFFF, available: 0, offset: 5)) {
            try SimpleSerialization.decode(hex("03 ffffffff"), budget: DecodeBudget(maxElements: 10, maxBytes: 1))
        }
    }

    @Test func derivedLimits() {
        let tenMiB = DecodeBudget(contentLimit: 10 << 20)
        #expect(tenMiB == DecodeBudget(maxElements: 10 << 17, maxBytes: 40 << 20))
        #expect(DecodeBudget.default == tenMiB)
        #expect(DecodeBudget(contentLimit: 0) == DecodeBudget(maxElements: 1024, maxBytes: 64 * 1024))
        #expect(DecodeBudget(contentLimit: .max).maxBytes == .max)
    }

    /// Real bodies fit: one payload as large as the limit, and anything under the floor.
    @Test func bodiesOfOrdinaryShapeFit() throws {
        let large = SimpleSerialization.encode([.bytes([UInt8](repeating: 1, count: Self.limit - 5))])
        #expect(try SimpleSerialization.decode(large, budget: DecodeBudget(contentLimit: Self.limit)).count == 1)
        let tiny = [UInt8](repeating: 0, count: 1024)
        #expect(try SimpleSerialization.decode(tiny, budget: DecodeBudget(contentLimit: 1024)).count == 1024)
        let request: [SimpleValue] = [
            "hello", .int64(1 << 40), .stringMap([SimplePair("k", "v")]),
            .array(["x", .int32(7), .map([SimplePair("a", .float64(1.5))])]),
        ]
        let body = SimpleSerialization.encode(request)
        #expect(try SimpleSerialization.decode(body, budget: DecodeBudget(contentLimit: body.count)) == request)
    }

    @Test func gzipLimitStillComesFirst() throws {
        let compressed = try Gzip.compress([UInt8](repeating: 0, count: Self.limit + 1))
        let frame = Frame(header: FrameHeader(flags: [.gzip], requestID: 1), body: compressed)
        #expect(
            failure { () throws(MotanCodecError) in try frame.decodedValues(maxContentLength: Self.limit) }
                == .gzipOutputTooLarge(limit: Self.limit))
    }
}
