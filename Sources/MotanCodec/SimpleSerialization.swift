/// Motan's "simple" serialization (id 6): every value is a tag byte and its payload; a body is
/// values back to back with no count.
public enum SimpleSerialization {
    public static let serializationID: UInt8 = SerializationID.simple
    /// Deep enough for any real argument, shallow enough that recursion cannot exhaust the stack.
    public static let defaultMaxDepth = 64

    // MARK: Encoding

    /// Appends the values back to back, as a request body carries its arguments.
    public static func encode(_ values: [SimpleValue], into output: inout [UInt8]) {
        for value in values { encode(value, into: &output) }
    }

    public static func encode(_ values: [SimpleValue]) -> [UInt8] {
        var output: [UInt8] = []
        encode(values, into: &output)
        return output
    }

    public static func encode(_ value: SimpleValue, into output: inout [UInt8]) {
        switch value {
        case .null:
            output.append(0)
        case .string(let string):
            appendString(string, into: &output)
        case .stringMap(let pairs):
            appendContainer(tag: 2, into: &output) { out in
                for pair in pairs {
                    appendLengthPrefixed(pair.key, into: &out)
                    appendLengthPrefixed(pair.value, into: &out)
                }
            }
        case .bytes(let bytes):
            output.append(3)
            bytes.withUnsafeBytes { appendLengthPrefixed($0, into: &output) }
        case .stringArray(let strings):
            appendContainer(tag: 4, into: &output) { out in
                for string in strings { appendLengthPrefixed(string, into: &out) }
            }
        case .bool(let flag):
            appendBool(flag, into: &output)
        case .byte(let byte):
            output.append(6)
            output.append(byte)
        case .int16(let number):
            output.append(7)
            let bits = UInt16(bitPattern: number)
            output.append(UInt8(truncatingIfNeeded: bits >> 8))
            output.append(UInt8(truncatingIfNeeded: bits))
        case .int32(let number):
            appendInt32(number, into: &output)
        case .int64(let number):
            appendInt64(number, into: &output)
        case .float32(let number):
            output.append(10)
            appendUInt32(number.bitPattern, into: &output)
        case .float64(let number):
            output.append(11)
            appendUInt64(number.bitPattern, into: &output)
        case .map(let pairs):
            appendContainer(tag: 20, into: &output) { out in
                for pair in pairs {
                    encode(pair.key, into: &out)
                    encode(pair.value, into: &out)
                }
            }
        case .array(let elements):
            appendContainer(tag: 21, into: &output) { out in
                for element in elements { encode(element, into: &out) }
            }
        }
    }

    // Allocation-free writers for hot paths that know their argument types.

    public static func appendNull(into output: inout [UInt8]) { output.append(0) }

    public static func appendString(_ string: String, into output: inout [UInt8]) {
        output.append(1)
        appendLengthPrefixed(string, into: &output)
    }

    public static func appendBytes(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        output.append(3)
        appendLengthPrefixed(bytes, into: &output)
    }

    public static func appendBool(_ flag: Bool, into output: inout [UInt8]) {
        output.append(5)
        output.append(flag ? 1 : 0)
    }

    /// The ≤ 5-byte form (motan-go, protobuf sint32), never Java's sign-extended 10-byte form.
    public static func appendInt32(_ number: Int32, into output: inout [UInt8]) {
        output.append(8)
        let zigzag = UInt32(bitPattern: (number << 1) ^ (number >> 31))
        appendVarint(UInt64(zigzag), into: &output)
    }

    public static func appendInt64(_ number: Int64, into output: inout [UInt8]) {
        output.append(9)
        let zigzag = UInt64(bitPattern: (number << 1) ^ (number >> 63))
        appendVarint(zigzag, into: &output)
    }

    static func appendVarint(_ value: UInt64, into output: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            output.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        output.append(UInt8(rest))
    }

    static func appendUInt32(_ value: UInt32, into output: inout [UInt8]) {
        output.append(UInt8(truncatingIfNeeded: value >> 24))
        output.append(UInt8(truncatingIfNeeded: value >> 16))
        output.append(UInt8(truncatingIfNeeded: value >> 8))
        output.append(UInt8(truncatingIfNeeded: value))
    }

    static func appendUInt64(_ value: UInt64, into output: inout [UInt8]) {
        appendUInt32(UInt32(truncatingIfNeeded: value >> 32), into: &output)
        appendUInt32(UInt32(truncatingIfNeeded: value), into: &output)
    }

    static func appendLengthPrefixed(_ string: String, into output: inout [UInt8]) {
        let utf8 = string.utf8
        appendUInt32(checkedLength(utf8.count), into: &output)
        output.append(contentsOf: utf8)
    }

    static func appendLengthPrefixed(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        appendUInt32(checkedLength(bytes.count), into: &output)
        output.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// Containers carry their content's byte length, which is only known afterwards.
    /// Containers carry the byte length of their content, known only once it is written.
    static func appendContainer(tag: UInt8, into output: inout [UInt8], _ writeContent: (inout [UInt8]) -> Void) {
        output.append(tag)
        let lengthAt = reserveLength(&output)
        writeContent(&output)
        patchLength(at: lengthAt, in: &output)
    }

    static func reserveLength(_ output: inout [UInt8]) -> Int {
        let position = output.count
        appendUInt32(0, into: &output)
        return position
    }

    static func patchLength(at position: Int, in output: inout [UInt8]) {
        let length = checkedLength(output.count - position - 4)
        output.withUnsafeMutableBytes {
            $0.storeBytes(of: length.bigEndian, toByteOffset: position, as: UInt32.self)
        }
    }

    private static func checkedLength(_ count: Int) -> UInt32 {
        guard let length = UInt32(exactly: count) else {
            preconditionFailure("simple serialization length \(count) does not fit in 32 bits")
        }
        return length
    }

    // MARK: Decoding

    /// Decodes every value in the body. Lengths are checked against the bytes actually present
    /// before anything is allocated, nesting is limited to `maxDepth` containers, and the values
    /// together may cost no more than `budget` (see `DecodeBudget`). Pass the budget of the content
    /// limit the body was read with, `DecodeBudget(contentLimit:)`.
    public static func decode(
        _ body: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth, budget: DecodeBudget = .default
    ) throws(MotanCodecError) -> [SimpleValue] {
        var reader = SimpleReader(bytes: body, maxDepth: maxDepth, budget: budget)
        var values: [SimpleValue] = []
        while reader.position < body.count {
            values.append(try reader.readValue(end: body.count, depth: 0))
        }
        return values
    }

    public static func decode(
        _ body: [UInt8], maxDepth: Int = defaultMaxDepth, budget: DecodeBudget = .default
    ) throws(MotanCodecError) -> [SimpleValue] {
        try body.withBytes { (bytes) throws(MotanCodecError) in
            try decode(bytes, maxDepth: maxDepth, budget: budget)
        }
    }

    /// Decodes a frame body: gunzipped first when `gzipped`, to at most `maxContentLength` bytes,
    /// then decoded within `budget`, by default `DecodeBudget(contentLimit: maxContentLength)`.
    /// With a `gzip` context, zlib allocates nothing and the inflated bytes are never copied out.
    public static func decodeBody(
        _ body: UnsafeRawBufferPointer, gzipped: Bool, maxContentLength: Int,
        budget: DecodeBudget? = nil, gzip context: GzipContext? = nil
    ) throws(MotanCodecError) -> [SimpleValue] {
        let budget = budget ?? DecodeBudget(contentLimit: maxContentLength)
        guard gzipped else { return try decode(body, budget: budget) }
        if let context {
            return try context.withDecompressed(body, maxOutput: maxContentLength) {
                (inflated) throws(MotanCodecError) in try decode(inflated, budget: budget)
            }
        }
        return try decode(try Gzip.decompress(body, maxOutput: maxContentLength), budget: budget)
    }
}
