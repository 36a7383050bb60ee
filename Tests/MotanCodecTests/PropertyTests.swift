import PropertyBased
import Testing

@testable import MotanCodec

/// Random inputs built straight from the random source; every generator is bounded in size.
enum Random {
    static let scalars: [Character] = Array("abcXYZ019_-.:/{}\" ") + ["é", "中", "😀", "\u{0}", "\r", "\t"]

    static func string(_ rng: inout any SeededRandomNumberGenerator, maxLength: Int, allowLF: Bool = true) -> String {
        let length = Int.random(in: 0...maxLength, using: &rng)
        var text = ""
        for _ in 0..<length {
            if allowLF && Int.random(in: 0..<20, using: &rng) == 0 {
                text.append("\n")
            } else {
                text.append(scalars.randomElement(using: &rng)!)
            }
        }
        return text
    }

    static func bytes(_ rng: inout any SeededRandomNumberGenerator, maxLength: Int) -> [UInt8] {
        (0..<Int.random(in: 0...maxLength, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func value(_ rng: inout any SeededRandomNumberGenerator, depth: Int) -> SimpleValue {
        switch Int.random(in: 0..<(depth > 0 ? 16 : 12), using: &rng) {
        case 0: return .null
        case 1: return .string(string(&rng, maxLength: 12))
        case 2:
            return .stringMap(
                (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    SimplePair(string(&rng, maxLength: 6), string(&rng, maxLength: 6))
                })
        case 3: return .bytes(bytes(&rng, maxLength: 12))
        case 4: return .stringArray((0..<Int.random(in: 0...3, using: &rng)).map { _ in string(&rng, maxLength: 6) })
        case 5: return .bool(Bool.random(using: &rng))
        case 6: return .byte(UInt8.random(in: 0...255, using: &rng))
        case 7: return .int16(Int16.random(in: .min ... .max, using: &rng))
        case 8: return .int32(interestingInt32(&rng))
        case 9: return .int64(interestingInt64(&rng))
        case 10: return .float32(Float(bitPattern: UInt32.random(in: 0 ... .max, using: &rng)))
        case 11: return .float64(Double(bitPattern: UInt64.random(in: 0 ... .max, using: &rng)))
        case 12, 13:
            return .map(
                (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    SimplePair(value(&rng, depth: depth - 1), value(&rng, depth: depth - 1))
                })
        default:
            return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in value(&rng, depth: depth - 1) })
        }
    }

    /// Small magnitudes and the 2^30 boundary, where Java's and Go's varint forms differ.
    static func interestingInt32(_ rng: inout any SeededRandomNumberGenerator) -> Int32 {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return Int32.random(in: -200...200, using: &rng)
        case 1:
            return Int32.random(in: (1 << 30) - 3...(1 << 30) + 3, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
        default: return Int32.random(in: .min ... .max, using: &rng)
        }
    }

    static func interestingInt64(_ rng: inout any SeededRandomNumberGenerator) -> Int64 {
        Bool.random(using: &rng)
            ? Int64.random(in: -200...200, using: &rng) : Int64.random(in: .min ... .max, using: &rng)
    }

    static func meta(_ rng: inout any SeededRandomNumberGenerator) -> Meta {
        var meta = Meta()
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            // Unsendable pairs (empty, or with LF) are refused by Meta and so never reach the wire.
            meta.append(string(&rng, maxLength: 10), string(&rng, maxLength: 20))
        }
        return meta
    }

    static func frame(_ rng: inout any SeededRandomNumberGenerator) -> Frame {
        let header = FrameHeader(
            flags: MessageFlags(rawValue: UInt8.random(in: 0...0x1F, using: &rng)),
            version: 1,
            status: UInt8.random(in: 0...7, using: &rng),
            serialization: UInt8.random(in: 0...31, using: &rng),
            requestID: UInt64.random(in: 0 ... .max, using: &rng))
        let body: [UInt8]
        if Bool.random(using: &rng) {
            body = SimpleSerialization.encode(
                (0..<Int.random(in: 0...3, using: &rng)).map { _ in value(&rng, depth: 2) })
        } else {
            body = bytes(&rng, maxLength: 300)
        }
        return Frame(header: header, meta: meta(&rng), body: body)
    }
}

let frameGenerator = Generator<Frame, Shrink.None<Frame>>(run: { rng in Random.frame(&rng) })
let streamGenerator = Generator<([Frame], [Int]), Shrink.None<([Frame], [Int])>>(run: { rng in
    let frames = (0..<Int.random(in: 1...6, using: &rng)).map { _ in Random.frame(&rng) }
    let chunks = (0..<Int.random(in: 1...8, using: &rng)).map { _ in
        Bool.random(using: &rng) ? Int.random(in: 1...4, using: &rng) : Int.random(in: 1...200, using: &rng)
    }
    return (frames, chunks)
})
let valuesGenerator = Generator<[SimpleValue], Shrink.None<[SimpleValue]>>(run: { rng in
    (0..<Int.random(in: 0...4, using: &rng)).map { _ in Random.value(&rng, depth: 4) }
})
let noiseGenerator = Generator<[UInt8], Shrink.None<[UInt8]>>(run: { rng in Random.bytes(&rng, maxLength: 200) })

struct PropertyTests {
    @Test func randomFramesRoundTrip() async {
        await propertyCheck(count: 300, input: frameGenerator) { frame throws in
            let bytes = encoded(frame)
            #expect(bytes.count == frame.encodedSize)
            #expect(try decodeOne(bytes) == frame)
        }
    }

    @Test func anySplitOfAStreamDecodesToTheSameFrames() async {
        await propertyCheck(count: 300, input: streamGenerator) { input throws in
            let (frames, chunks) = input
            let stream = frames.flatMap(encoded)
            let result = decodeStream(stream, chunks: chunks)
            #expect(result.error == nil)
            #expect(result.frames == frames)
        }
    }

    @Test func borrowedAndOwnedDecodingAgree() async {
        await propertyCheck(count: 200, input: frameGenerator) { frame throws in
            var decoder = FrameDecoder()
            decoder.feed(encoded(frame))
            let viewed = try decoder.withNext { view in
                (view.makeFrame(), Array(view.body), frame.meta.map { view.metaString(forKey: $0.key) })
            }
            #expect(viewed?.0 == frame)
            #expect(viewed?.1 == frame.body)
            #expect(viewed?.2 == frame.meta.map { Optional(frame.meta[$0.key]!) })
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func randomSimpleValuesRoundTrip() async {
        await propertyCheck(count: 500, input: valuesGenerator) { values throws in
            let bytes = SimpleSerialization.encode(values)
            let decoded = try SimpleSerialization.decode(bytes)
            #expect(decoded == values)
            #expect(SimpleSerialization.encode(decoded) == bytes)
        }
    }

    @Test func countingAndInPlaceEncodingAgreeWithTheArrayEncoder() async {
        await propertyCheck(count: 500, input: valuesGenerator) { values throws in
            for value in values {
                var expected: [UInt8] = []
                SimpleSerialization.encode(value, into: &expected)
                #expect(SimpleSerialization.encodedCount(value) == expected.count)
                // One spare byte on each side: the writer must touch exactly its bytes.
                var space = [UInt8](repeating: 0xEE, count: expected.count + 2)
                let written = space.withUnsafeMutableBytes {
                    SimpleSerialization.encode(
                        value, to: UnsafeMutableRawBufferPointer(rebasing: $0[1..<(expected.count + 1)]))
                }
                #expect(written == expected.count)
                #expect(Array(space[1..<(expected.count + 1)]) == expected)
                #expect(space.first == 0xEE && space.last == 0xEE)
            }
        }
    }

    /// Validation must accept exactly what decoding accepts, under every limit, and fail with
    /// the same error: handlers that pass arguments through rely on it.
    @Test func validationAgreesWithDecoding() async {
        let limits: [(Int, DecodeBudget)] = [
            (SimpleSerialization.defaultMaxDepth, .default), (2, .default),
            (64, DecodeBudget(maxElements: 6, maxBytes: 1 << 20)),
            (64, DecodeBudget(maxElements: 1 << 20, maxBytes: 200)),
        ]
        func check(_ bytes: [UInt8]) {
            for (maxDepth, budget) in limits {
                bytes.withUnsafeBytes { body in
                    let decoded = Result { () throws(MotanCodecError) in
                        try SimpleSerialization.decode(body, maxDepth: maxDepth, budget: budget)
                    }
                    let shape = Result { () throws(MotanCodecError) in
                        try SimpleSerialization.validate(body, maxDepth: maxDepth, budget: budget)
                    }
                    switch (decoded, shape) {
                    case (.success(let values), .success(let shape)):
                        #expect(shape.count == values.count)
                        if let range = shape.firstValue {
                            let first = try? SimpleSerialization.decode(UnsafeRawBufferPointer(rebasing: body[range]))
                            #expect(first == [values[0]])
                        } else {
                            #expect(values.isEmpty)
                        }
                    case (.failure(let decodeError), .failure(let validateError)):
                        #expect(validateError == decodeError)
                    default:
                        Issue.record("decode \(decoded) but validate \(shape) for \(bytes)")
                    }
                }
            }
        }
        await propertyCheck(count: 400, input: valuesGenerator) { values throws in
            let bytes = SimpleSerialization.encode(values)
            check(bytes)
            // Cut short and with a byte changed: the errors must agree too.
            if !bytes.isEmpty {
                check(Array(bytes.dropLast(1 + bytes.count / 3)))
                var changed = bytes
                changed[bytes.count / 2] ^= 0x5A
                check(changed)
            }
        }
        await propertyCheck(count: 400, input: noiseGenerator) { noise throws in check(noise) }
    }

    @Test func javaSignExtendedInt32DecodesToTheSameValue() async {
        await propertyCheck(count: 300, input: Gen.int32()) { number throws in
            let zigzag = UInt32(bitPattern: (number << 1) ^ (number >> 31))
            // Java widens the zigzag value as a signed int before writing a 64-bit varint.
            var javaBytes: [UInt8] = [8]
            SimpleSerialization.writeVarint(UInt64(bitPattern: Int64(Int32(bitPattern: zigzag))), to: &javaBytes)
            #expect(try SimpleSerialization.decode(javaBytes) == [.int32(number)])
            let ours = SimpleSerialization.encode([.int32(number)])
            #expect(ours.count <= 6)
            #expect(try SimpleSerialization.decode(ours) == [.int32(number)])
        }
    }

    @Test func noiseNeverCrashesTheDecoders() async {
        await propertyCheck(count: 500, input: noiseGenerator) { noise throws in
            let framed = hex("f1f1 00 08 30 0000000000000001") + noise
            for bytes in [noise, framed] {
                _ = decodeStream(bytes, chunks: [3])
                _ = try? SimpleSerialization.decode(bytes)
                _ = try? Gzip.decompress(bytes, maxOutput: 1 << 16)
            }
        }
    }
}
