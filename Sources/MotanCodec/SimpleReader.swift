/// Cursor over a simple-serialized body. Every read is checked against the end of the body or
/// of the enclosing container, so a hostile length can never cause an allocation larger than
/// the input.
struct SimpleReader {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    var position = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// `depth` counts the containers around the value.
    mutating func readValue(end: Int, depth: Int) throws(MotanCodecError) -> SimpleValue {
        let tagOffset = position
        let tag = try readByte(end: end)
        switch tag {
        case 0:
            return .null
        case 1:
            return .string(try readString(end: end))
        case 2:
            let contentEnd = try readContainerEnd(end: end)
            var pairs: [SimplePair<String, String>] = []
            while position < contentEnd {
                let key = try readString(end: contentEnd)
                let value = try readString(end: contentEnd)
                pairs.append(SimplePair(key, value))
            }
            return .stringMap(pairs)
        case 3:
            let range = try readLengthPrefixed(end: end)
            return .bytes(Array(UnsafeRawBufferPointer(rebasing: bytes[range])))
        case 4:
            let contentEnd = try readContainerEnd(end: end)
            var strings: [String] = []
            while position < contentEnd { strings.append(try readString(end: contentEnd)) }
            return .stringArray(strings)
        case 5:
            // Only 01 is true in both reference decoders.
            return .bool(try readByte(end: end) == 1)
        case 6:
            return .byte(try readByte(end: end))
        case 7:
            try need(2, end: end)
            let bits = UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
            position += 2
            return .int16(Int16(bitPattern: bits))
        case 8:
            // Java sign-extends the zigzag value to 10 bytes; the low 32 bits are the same.
            let zigzag = UInt32(truncatingIfNeeded: try readVarint(end: end))
            return .int32(Int32(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
        case 9:
            let zigzag = try readVarint(end: end)
            return .int64(Int64(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
        case 10:
            return .float32(Float(bitPattern: try readUInt32(end: end)))
        case 11:
            let high = UInt64(try readUInt32(end: end))
            let low = UInt64(try readUInt32(end: end))
            return .float64(Double(bitPattern: high << 32 | low))
        case 20, 21:
            guard depth < maxDepth else {
                throw .simpleDepthLimitExceeded(limit: maxDepth, offset: tagOffset)
            }
            let contentEnd = try readContainerEnd(end: end)
            if tag == 20 {
                var pairs: [SimplePair<SimpleValue, SimpleValue>] = []
                while position < contentEnd {
                    let key = try readValue(end: contentEnd, depth: depth + 1)
                    let value = try readValue(end: contentEnd, depth: depth + 1)
                    pairs.append(SimplePair(key, value))
                }
                return .map(pairs)
            }
            var elements: [SimpleValue] = []
            while position < contentEnd {
                elements.append(try readValue(end: contentEnd, depth: depth + 1))
            }
            return .array(elements)
        default:
            throw .simpleUnknownTag(tag, offset: tagOffset)
        }
    }

    @inline(__always)
    private func need(_ count: Int, end: Int) throws(MotanCodecError) {
        guard end - position >= count else {
            throw .simpleTruncated(needed: count, available: end - position, offset: position)
        }
    }

    private mutating func readByte(end: Int) throws(MotanCodecError) -> UInt8 {
        try need(1, end: end)
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readUInt32(end: Int) throws(MotanCodecError) -> UInt32 {
        try need(4, end: end)
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16
            | UInt32(bytes[position + 2]) << 8 | UInt32(bytes[position + 3])
    }

    /// Reads a u32 length and checks that many bytes are present.
    private mutating func readLengthPrefixed(end: Int) throws(MotanCodecError) -> Range<Int> {
        let length = Int(try readUInt32(end: end))
        try need(length, end: end)
        defer { position += length }
        return position..<(position + length)
    }

    /// Containers are read in place: returns where their content ends.
    private mutating func readContainerEnd(end: Int) throws(MotanCodecError) -> Int {
        let length = Int(try readUInt32(end: end))
        try need(length, end: end)
        return position + length
    }

    private mutating func readString(end: Int) throws(MotanCodecError) -> String {
        let range = try readLengthPrefixed(end: end)
        // Like Java, invalid UTF-8 is repaired rather than rejected.
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Up to 10 bytes, least significant group first; more than 64 bits is an overflow.
    private mutating func readVarint(end: Int) throws(MotanCodecError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for index in 0..<10 {
            let byte = try readByte(end: end)
            if index == 9 && byte > 1 { throw .simpleVarintOverflow(offset: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .simpleVarintOverflow(offset: start)
    }
}
