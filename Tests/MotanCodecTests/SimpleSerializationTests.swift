import Testing

@testable import MotanCodec

/// The examples of simple-serialization.md, written out here so they do not depend on the
/// vectors directory.
struct SimpleSerializationTests {
    static let examples: [(hex: String, value: SimpleValue)] = [
        ("00", .null),
        ("01 00000007 746573746d7367", "testmsg"),
        ("01 00000000", ""),
        ("01 00000006 e5beae e58d9a", "微博"),
        ("01 00000003 e4b8ad", "中"),
        ("02 0000000a 00000001 6b 00000001 76", .stringMap([SimplePair("k", "v")])),
        ("03 00000004 000102ff", .bytes([0x00, 0x01, 0x02, 0xFF])),
        ("03 00000000", .bytes([])),
        ("04 0000000b 00000001 61 00000002 6263", .stringArray(["a", "bc"])),
        ("04 00000000", .stringArray([])),
        ("05 01", true),
        ("05 00", false),
        ("06 7f", .byte(0x7F)),
        ("06 ff", .byte(0xFF)),
        ("07 fffe", .int16(-2)),
        ("07 fff0", .int16(-16)),
        ("07 012c", .int16(300)),
        ("08 00", .int32(0)),
        ("08 02", .int32(1)),
        ("08 01", .int32(-1)),
        ("08 20", .int32(16)),
        ("08 1f", .int32(-16)),
        ("08 7e", .int32(63)),
        ("08 8001", .int32(64)),
        ("08 fe01", .int32(127)),
        ("08 8002", .int32(128)),
        ("08 d804", .int32(300)),
        ("08 d704", .int32(-300)),
        ("08 feffffff07", .int32(1_073_741_823)),
        ("08 ffffffff07", .int32(-1_073_741_824)),
        ("08 8080808008", .int32(1_073_741_824)),
        ("08 8180808008", .int32(-1_073_741_825)),
        ("08 feffffff0f", .int32(.max)),
        ("08 ffffffff0f", .int32(.min)),
        ("09 02", .int64(1)),
        ("09 7f", .int64(-64)),
        ("09 ac02", .int64(150)),
        ("09 d804", .int64(300)),
        ("09 8080808010", .int64(1 << 31)),
        ("09 feffffffffffffffff01", .int64(.max)),
        ("09 ffffffffffffffffff01", .int64(.min)),
        ("0a 3fc00000", .float32(1.5)),
        ("0b c002000000000000", .float64(-2.25)),
        ("0b 3ff8000000000000", .float64(1.5)),
        ("0b c000000000000000", .float64(-2.0)),
        ("14 00000008 01 00000001 61 09 02", .map([SimplePair("a", .int64(1))])),
        (
            "14 0000000c 01 00000001 61 08 02 09 04 05 01",
            .map([SimplePair("a", .int32(1)), SimplePair(.int64(2), true)])
        ),
        ("14 00000000", .map([])),
        ("15 0000000a 01 00000001 78 09 04 05 01", ["x", 2, true]),
        ("15 00000009 01 00000001 78 08 02 00", ["x", .int32(1), .null]),
        ("15 00000009 01 00000001 78 07 0002", ["x", .int16(2)]),
        ("15 00000000", .array([])),
    ]

    @Test(arguments: 0..<examples.count)
    func exampleDecodesAndReencodesIdentically(_ index: Int) throws {
        let (text, value) = Self.examples[index]
        let bytes = hex(text)
        #expect(try SimpleSerialization.decode(bytes) == [value], "\(text)")
        #expect(hexString(SimpleSerialization.encode([value])) == hexString(bytes), "\(text)")
    }

    /// Java sign-extends int32 zigzag values with bit 31 set to ten bytes; we read that form
    /// and always write the five-byte one.
    @Test(arguments: [
        ("08 80808080f8ffffffff01", Int32(1_073_741_824), "08 8080808008"),
        ("08 81808080f8ffffffff01", Int32(-1_073_741_825), "08 8180808008"),
        ("08 feffffffffffffffff01", Int32.max, "08 feffffff0f"),
        ("08 ffffffffffffffffff01", Int32.min, "08 ffffffff0f"),
    ])
    func javaTenByteInt32IsDecodedOnly(_ java: String, _ value: Int32, _ ours: String) throws {
        #expect(try SimpleSerialization.decode(hex(java)) == [.int32(value)])
        #expect(SimpleSerialization.encode([.int32(value)]) == hex(ours))
    }

    @Test func severalValuesInOneBody() throws {
        #expect(try SimpleSerialization.decode(hex("01 00000001 61 09 02")) == ["a", .int64(1)])
        let java = hex("01 00000003 313233 08 9007 05 01")
        #expect(try SimpleSerialization.decode(java) == ["123", .int32(456), true])
        #expect(SimpleSerialization.encode(["123", .int32(456), true]) == java)
        #expect(try SimpleSerialization.decode([]) == [])
    }

    @Test func onlyOneIsTrue() throws {
        #expect(try SimpleSerialization.decode(hex("05 02 05 ff")) == [false, false])
    }

    @Test func nestedContainers() throws {
        let value: SimpleValue = .map([
            SimplePair("list", [.stringArray(["a"]), .stringMap([SimplePair("k", "v")]), .bytes([1])]),
            SimplePair(.int32(-7), .map([SimplePair(.null, .float32(0.25))])),
        ])
        let bytes = SimpleSerialization.encode([value])
        #expect(try SimpleSerialization.decode(bytes) == [value])
    }

    @Test func allocationFreeWritersMatchTheValueEncoder() {
        var direct: [UInt8] = []
        SimpleSerialization.appendString("testmsg", into: &direct)
        SimpleSerialization.appendInt32(-300, into: &direct)
        SimpleSerialization.appendInt64(.min, into: &direct)
        SimpleSerialization.appendBool(true, into: &direct)
        SimpleSerialization.appendNull(into: &direct)
        [UInt8]([9, 8]).withUnsafeBytes { SimpleSerialization.appendBytes($0, into: &direct) }
        #expect(
            direct == SimpleSerialization.encode(["testmsg", .int32(-300), .int64(.min), true, .null, .bytes([9, 8])]))
    }

    // MARK: Malformed bodies

    @Test func inPlaceEncodingNeverWritesPastItsSpace() async {
        await #expect(processExitsWith: .failure) {
            var space = [UInt8](repeating: 0, count: 8)
            space.withUnsafeMutableBytes {
                _ = SimpleSerialization.encode(.string("longer than eight bytes"), to: $0)
            }
        }
    }

    @Test func decodingIntoAppendsToWhatIsThere() throws {
        var values: [SimpleValue] = [.int32(1)]
        try SimpleSerialization.encode([.string("a"), .bool(true)]).withUnsafeBytes {
            try SimpleSerialization.decode($0, into: &values)
        }
        #expect(values == [.int32(1), .string("a"), .bool(true)])
    }

    @Test func unknownTagsAreRejected() {
        for tag: UInt8 in [12, 13, 19, 22, 0xFF] {
            #expect(throws: MotanCodecError.simpleUnknownTag(tag, offset: 2)) {
                try SimpleSerialization.decode([0x05, 0x01, tag])
            }
        }
    }

    @Test func lengthsBeyondTheBodyAreRejectedBeforeAllocating() {
        #expect(throws: MotanCodecError.simpleTruncated(needed: 7, available: 3, offset: 5)) {
            try SimpleSerialization.decode(hex("01 00000007 746573"))
        }
        #expect(throws: MotanCodecError.simpleTruncated(needed: 0xFFFF_FFFF, available: 0, offset: 5)) {
            try SimpleSerialization.decode(hex("03 ffffffff"))
        }
        #expect(throws: MotanCodecError.simpleTruncated(needed: 4, available: 2, offset: 1)) {
            try SimpleSerialization.decode(hex("15 0000"))
        }
        #expect(throws: MotanCodecError.simpleTruncated(needed: 2, available: 1, offset: 1)) {
            try SimpleSerialization.decode(hex("07 ff"))
        }
        #expect(throws: MotanCodecError.simpleTruncated(needed: 1, available: 0, offset: 1)) {
            try SimpleSerialization.decode(hex("05"))
        }
        #expect(throws: MotanCodecError.simpleTruncated(needed: 1, available: 0, offset: 3)) {
            try SimpleSerialization.decode(hex("09 8080"))
        }
    }

    @Test func entriesMayNotRunPastTheirContainer() {
        // The array claims 3 content bytes, so its string's length field is cut short; the
        // bytes after the array do not count.
        #expect(throws: MotanCodecError.simpleTruncated(needed: 4, available: 2, offset: 6)) {
            try SimpleSerialization.decode(hex("15 00000003 01 00000001 78 0000"))
        }
        // A map with a key and no value.
        #expect(throws: MotanCodecError.simpleTruncated(needed: 1, available: 0, offset: 11)) {
            try SimpleSerialization.decode(hex("14 00000006 01 00000001 61 09 02"))
        }
        // A string map whose value length runs past the map.
        #expect(throws: MotanCodecError.simpleTruncated(needed: 4, available: 0, offset: 11)) {
            try SimpleSerialization.decode(hex("02 00000006 00000002 6b6b 00000001 76"))
        }
    }

    @Test func varintsLongerThanSixtyFourBitsAreRejected() {
        #expect(throws: MotanCodecError.simpleVarintOverflow(offset: 1)) {
            try SimpleSerialization.decode(hex("09 ffffffffffffffffff02"))
        }
        #expect(throws: MotanCodecError.simpleVarintOverflow(offset: 1)) {
            try SimpleSerialization.decode(hex("08 ffffffffffffffffff81 00"))
        }
    }

    @Test func nestingIsLimited() throws {
        func nested(_ depth: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(depth * 5)
            for level in 0..<depth { bytes += [0x15] + be32((depth - 1 - level) * 5) }
            return bytes
        }
        #expect(try SimpleSerialization.decode(nested(64)).count == 1)
        #expect(throws: MotanCodecError.simpleDepthLimitExceeded(limit: 64, offset: 64 * 5)) {
            try SimpleSerialization.decode(nested(65))
        }
        #expect(throws: MotanCodecError.simpleDepthLimitExceeded(limit: 2, offset: 10)) {
            try SimpleSerialization.decode(nested(3), maxDepth: 2)
        }
        // A hostile body far deeper than the stack could take fails cleanly.
        #expect(throws: MotanCodecError.simpleDepthLimitExceeded(limit: 64, offset: 320)) {
            try SimpleSerialization.decode(nested(100_000))
        }
    }

    @Test func invalidUTF8IsRepairedLikeJava() throws {
        #expect(try SimpleSerialization.decode(hex("01 00000002 ff61")) == ["\u{FFFD}a"])
    }
}

@Suite(.enabled(if: GoldenVectors.isAvailable, "golden vectors directory not found"))
struct SimpleVectorTests {
    static let expectations: [String: [SimpleValue]] = [
        "go_null": [.null],
        "go_string_testmsg": ["testmsg"],
        "go_string_empty": [""],
        "go_string_utf8": ["微博"],
        "go_string_map_1": [.stringMap([SimplePair("k", "v")])],
        "go_bytes": [.bytes([0x00, 0x01, 0x02, 0xFF])],
        "go_string_array": [.stringArray(["a", "bc"])],
        "go_bool_true": [true],
        "go_bool_false": [false],
        "go_byte_0x7f": [.byte(0x7F)],
        "go_int16_-2": [.int16(-2)],
        "go_int32_-1": [.int32(-1)],
        "go_int32_300": [.int32(300)],
        "go_int64_1": [.int64(1)],
        "go_int64_-64": [.int64(-64)],
        "go_int_150": [.int64(150)],
        "go_int64_max": [.int64(.max)],
        "go_float32_1.5": [.float32(1.5)],
        "go_float64_-2.25": [.float64(-2.25)],
        "go_map_string_to_int64": [.map([SimplePair("a", .int64(1))])],
        "go_array_mixed": [["x", .int64(2), true]],
        "go_multi_string_a_int64_1": ["a", .int64(1)],
    ]

    @Test func everySimpleVectorIsCovered() {
        #expect(Set(GoldenVectors.fileNames(in: "simple")) == Set(Self.expectations.keys))
    }

    @Test(arguments: expectations.keys.sorted())
    func decodesToTheNamedValueAndReencodesIdentically(_ name: String) throws {
        let bytes = GoldenVectors.bytes("simple/" + name)
        let values = try SimpleSerialization.decode(bytes)
        #expect(values == Self.expectations[name])
        #expect(hexString(SimpleSerialization.encode(values)) == hexString(bytes))
    }
}
