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
        write(value, to: &output)
    }

    /// The number of bytes `value` encodes to.
    public static func encodedCount(_ value: SimpleValue) -> Int {
        var counter = SimpleByteCounter()
        write(value, to: &counter)
        return counter.count
    }

    /// Encodes `value` into `destination`, which must hold at least `encodedCount(value)` bytes
    /// (a smaller one traps, it is never overrun), and returns how many it wrote: for writers
    /// that size their space first and then write in place, with no intermediate array.
    @discardableResult
    public static func encode(_ value: SimpleValue, to destination: UnsafeMutableRawBufferPointer) -> Int {
        var writer = SimpleMemoryWriter(destination)
        write(value, to: &writer)
        return writer.count
    }

    /// The one encoder: arrays, byte counting and in-place writes all run this code.
    static func write<Sink: SimpleSink>(_ value: SimpleValue, to output: inout Sink) {
        switch value {
        case .null:
            output.put(0)
        case .string(let string):
            output.put(1)
            writeLengthPrefixed(string, to: &output)
        case .stringMap(let pairs):
            writeContainer(tag: 2, to: &output) { out in
                for pair in pairs {
                    writeLengthPrefixed(pair.key, to: &out)
                    writeLengthPrefixed(pair.value, to: &out)
                }
            }
        case .bytes(let bytes):
            output.put(3)
            bytes.withUnsafeBytes { writeLengthPrefixed($0, to: &output) }
        case .stringArray(let strings):
            writeContainer(tag: 4, to: &output) { out in
                for string in strings { writeLengthPrefixed(string, to: &out) }
            }
        case .bool(let flag):
            output.put(5)
            output.put(flag ? 1 : 0)
        case .byte(let byte):
            output.put(6)
            output.put(byte)
        case .int16(let number):
            output.put(7)
            let bits = UInt16(bitPattern: number)
            output.put(UInt8(truncatingIfNeeded: bits >> 8))
            output.put(UInt8(truncatingIfNeeded: bits))
        case .int32(let number):
            // The ≤ 5-byte form (motan-go, protobuf sint32), never Java's sign-extended 10-byte form.
            output.put(8)
            let zigzag = UInt32(bitPattern: (number << 1) ^ (number >> 31))
            writeVarint(UInt64(zigzag), to: &output)
        case .int64(let number):
            output.put(9)
            writeVarint(UInt64(bitPattern: (number << 1) ^ (number >> 63)), to: &output)
        case .float32(let number):
            output.put(10)
            writeUInt32(number.bitPattern, to: &output)
        case .float64(let number):
            output.put(11)
            writeUInt64(number.bitPattern, to: &output)
        case .map(let pairs):
            writeContainer(tag: 20, to: &output) { out in
                for pair in pairs {
                    write(pair.key, to: &out)
                    write(pair.value, to: &out)
                }
            }
        case .array(let elements):
            writeContainer(tag: 21, to: &output) { out in
                for element in elements { write(element, to: &out) }
            }
        }
    }

    // Allocation-free writers for hot paths that know their argument types.

    public static func appendNull(into output: inout [UInt8]) { output.append(0) }

    public static func appendString(_ string: String, into output: inout [UInt8]) {
        write(.string(string), to: &output)
    }

    public static func appendBytes(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        output.append(3)
        writeLengthPrefixed(bytes, to: &output)
    }

    public static func appendBool(_ flag: Bool, into output: inout [UInt8]) {
        write(.bool(flag), to: &output)
    }

    public static func appendInt32(_ number: Int32, into output: inout [UInt8]) {
        write(.int32(number), to: &output)
    }

    public static func appendInt64(_ number: Int64, into output: inout [UInt8]) {
        write(.int64(number), to: &output)
    }

    /// Puts a zero length where a frame part's length goes, and returns where to patch it.
    static func reserveLength(_ output: inout [UInt8]) -> Int {
        let position = output.count
        writeUInt32(0, to: &output)
        return position
    }

    static func patchLength(at position: Int, in output: inout [UInt8]) {
        output.patchUInt32(checkedLength(output.count - position - 4), at: position)
    }

    static func writeVarint<Sink: SimpleSink>(_ value: UInt64, to output: inout Sink) {
        var rest = value
        while rest >= 0x80 {
            output.put(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        output.put(UInt8(rest))
    }

    static func writeUInt32<Sink: SimpleSink>(_ value: UInt32, to output: inout Sink) {
        withUnsafeBytes(of: value.bigEndian) { output.put($0) }
    }

    static func writeUInt64<Sink: SimpleSink>(_ value: UInt64, to output: inout Sink) {
        withUnsafeBytes(of: value.bigEndian) { output.put($0) }
    }

    static func writeLengthPrefixed<Sink: SimpleSink>(_ string: String, to output: inout Sink) {
        let utf8 = string.utf8
        // Native strings lend their UTF-8 in one piece: one copy instead of a byte-wise walk.
        let copied: Void? = utf8.withContiguousStorageIfAvailable {
            writeLengthPrefixed(UnsafeRawBufferPointer($0), to: &output)
        }
        if copied == nil {
            writeUInt32(checkedLength(utf8.count), to: &output)
            for byte in utf8 { output.put(byte) }
        }
    }

    static func writeLengthPrefixed<Sink: SimpleSink>(_ bytes: UnsafeRawBufferPointer, to output: inout Sink) {
        writeUInt32(checkedLength(bytes.count), to: &output)
        output.put(bytes)
    }

    /// Containers carry the byte length of their content, known only once it is written.
    static func writeContainer<Sink: SimpleSink>(
        tag: UInt8, to output: inout Sink, _ writeContent: (inout Sink) -> Void
    ) {
        output.put(tag)
        let lengthAt = output.count
        writeUInt32(0, to: &output)
        writeContent(&output)
        output.patchUInt32(checkedLength(output.count - lengthAt - 4), at: lengthAt)
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
        var values: [SimpleValue] = []
        try decode(body, into: &values, maxDepth: maxDepth, budget: budget)
        return values
    }

    /// Appends the body's values to `values`, whose storage a caller may reuse from request to
    /// request (`removeAll(keepingCapacity: true)` first). On a throw, `values` holds what was
    /// decoded before the error.
    public static func decode(
        _ body: UnsafeRawBufferPointer, into values: inout [SimpleValue], maxDepth: Int = defaultMaxDepth,
        budget: DecodeBudget = .default
    ) throws(MotanCodecError) {
        var reader = SimpleReader(bytes: body, maxDepth: maxDepth, budget: budget)
        while reader.position < body.count {
            values.append(try reader.readValue(end: body.count, depth: 0))
        }
    }

    public static func decode(
        _ body: [UInt8], maxDepth: Int = defaultMaxDepth, budget: DecodeBudget = .default
    ) throws(MotanCodecError) -> [SimpleValue] {
        try body.withBytes { (bytes) throws(MotanCodecError) in
            try decode(bytes, maxDepth: maxDepth, budget: budget)
        }
    }

    /// Checks that `body` decodes, with the same limits and errors as `decode`, without making
    /// any value: for handlers that pass arguments on as they came (an echo, a forwarder) but
    /// must not pass on what does not decode.
    public static func validate(
        _ body: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth, budget: DecodeBudget = .default
    ) throws(MotanCodecError) -> SimpleBodyShape {
        var reader = SimpleReader(bytes: body, maxDepth: maxDepth, budget: budget)
        var shape = SimpleBodyShape()
        while reader.position < body.count {
            let start = reader.position
            try reader.skipValue(end: body.count, depth: 0)
            if shape.count == 0 { shape.firstValue = start..<reader.position }
            shape.count += 1
        }
        return shape
    }

    /// Decodes a frame body: gunzipped first when `gzipped`, to at most `maxContentLength` bytes,
    /// then decoded within `budget`, by default `DecodeBudget(contentLimit: maxContentLength)`.
    /// With a `gzip` context, zlib allocates nothing and the inflated bytes are never copied out.
    public static func decodeBody(
        _ body: UnsafeRawBufferPointer, gzipped: Bool, maxContentLength: Int,
        budget: DecodeBudget? = nil, gzip context: GzipContext? = nil
    ) throws(MotanCodecError) -> [SimpleValue] {
        var values: [SimpleValue] = []
        try decodeBody(
            body, gzipped: gzipped, maxContentLength: maxContentLength, into: &values, budget: budget, gzip: context)
        return values
    }

    /// `decodeBody` appending to `values`, as `decode(_:into:)` does.
    public static func decodeBody(
        _ body: UnsafeRawBufferPointer, gzipped: Bool, maxContentLength: Int, into values: inout [SimpleValue],
        budget: DecodeBudget? = nil, gzip context: GzipContext? = nil
    ) throws(MotanCodecError) {
        let budget = budget ?? DecodeBudget(contentLimit: maxContentLength)
        guard gzipped else { return try decode(body, into: &values, budget: budget) }
        if let context {
            return try context.withDecompressed(body, maxOutput: maxContentLength) {
                (inflated) throws(MotanCodecError) in try decode(inflated, into: &values, budget: budget)
            }
        }
        let inflated = try Gzip.decompress(body, maxOutput: maxContentLength)
        try inflated.withBytes { (bytes) throws(MotanCodecError) in try decode(bytes, into: &values, budget: budget) }
    }
}

/// What `SimpleSerialization.validate` learns about a body that decodes.
public struct SimpleBodyShape: Sendable, Equatable {
    /// How many values the body holds.
    public var count = 0
    /// Where the first value's bytes are (tag included), if there is one.
    public var firstValue: Range<Int>?

    public init(count: Int = 0, firstValue: Range<Int>? = nil) {
        self.count = count
        self.firstValue = firstValue
    }
}
