/// Cursor over a simple-serialized body. Every read is checked against the end of the body or
/// of the enclosing container, so a hostile length can never cause an allocation larger than
/// the input, and every element is charged to the budget before it is built, so many small
/// elements cannot add up to more than the budget either.
struct SimpleReader {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let budget: DecodeBudget
    var position = 0
    private(set) var elementCount = 0
    /// Element charges plus payload bytes, as `DecodeBudget` counts them.
    private(set) var decodedBytes = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, budget: DecodeBudget) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.budget = budget
    }

    /// `depth` counts the containers around the value.
    mutating func readValue(end: Int, depth: Int) throws(MotanCodecError) -> SimpleValue {
        let tagOffset = position
        let tag = try readByte(end: end)
        switch tag {
        case 0:
            try charge(payload: 0, offset: tagOffset)
            return .null
        case 1:
            return .string(try readString(end: end, elementOffset: tagOffset))
        case 2:
            try charge(payload: 0, offset: tagOffset)
            let contentEnd = try readContainerEnd(end: end)
            var pairs: [SimplePair<String, String>] = []
            while position < contentEnd {
                let key = try readString(end: contentEnd, elementOffset: position)
                let value = try readString(end: contentEnd, elementOffset: position)
                pairs.append(SimplePair(key, value))
            }
            return .stringMap(pairs)
        case 3:
            let range = try readLengthPrefixed(end: end)
            try charge(payload: range.count, offset: tagOffset)
            return .bytes(Array(UnsafeRawBufferPointer(rebasing: bytes[range])))
        case 4:
            try charge(payload: 0, offset: tagOffset)
            let contentEnd = try readContainerEnd(end: end)
            var strings: [String] = []
            while position < contentEnd {
                strings.append(try readString(end: contentEnd, elementOffset: position))
            }
            return .stringArray(strings)
        case 5:
            try charge(payload: 0, offset: tagOffset)
            // Only 01 is true in both reference decoders.
            return .bool(try readByte(end: end) == 1)
        case 6:
            try charge(payload: 0, offset: tagOffset)
            return .byte(try readByte(end: end))
        case 7:
            try charge(payload: 0, offset: tagOffset)
            try need(2, end: end)
            let bits = UInt16(bytes[position]) << 8 | UInt16(bytes[position + 1])
            position += 2
            return .int16(Int16(bitPattern: bits))
        case 8:
            try charge(payload: 0, offset: tagOffset)
            // Java sign-extends the zigzag value to 10 bytes; the low 32 bits are the same.
            let zigzag = UInt32(truncatingIfNeeded: try readVarint(end: end))
            return .int32(Int32(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
        case 9:
            try charge(payload: 0, offset: tagOffset)
            let zigzag = try readVarint(end: end)
            return .int64(Int64(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1))))
        case 10:
            try charge(payload: 0, offset: tagOffset)
            return .float32(Float(bitPattern: try readUInt32(end: end)))
        case 11:
            try charge(payload: 0, offset: tagOffset)
            let high = UInt64(try readUInt32(end: end))
            let low = UInt64(try readUInt32(end: end))
            return .float64(Double(bitPattern: high << 32 | low))
        case 20, 21:
            guard depth < maxDepth else {
                throw .simpleDepthLimitExceeded(limit: maxDepth, offset: tagOffset)
            }
            try charge(payload: 0, offset: tagOffset)
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

    /// `readValue` without making the value: the same checks and charges in the same order, so
    /// a body passes exactly when `readValue` would decode it, and fails with the same error.
    mutating func skipValue(end: Int, depth: Int) throws(MotanCodecError) {
        let tagOffset = position
        let tag = try readByte(end: end)
        switch tag {
        case 0:
            try charge(payload: 0, offset: tagOffset)
        case 1:
            try skipString(end: end, elementOffset: tagOffset)
        case 2, 4:
            try charge(payload: 0, offset: tagOffset)
            let contentEnd = try readContainerEnd(end: end)
            while position < contentEnd {
                try skipString(end: contentEnd, elementOffset: position)
                if tag == 2 { try skipString(end: contentEnd, elementOffset: position) }
            }
        case 3:
            let range = try readLengthPrefixed(end: end)
            try charge(payload: range.count, offset: tagOffset)
        case 5, 6:
            try charge(payload: 0, offset: tagOffset)
            _ = try readByte(end: end)
        case 7:
            try charge(payload: 0, offset: tagOffset)
            try need(2, end: end)
            position += 2
        case 8, 9:
            try charge(payload: 0, offset: tagOffset)
            _ = try readVarint(end: end)
        case 10:
            try charge(payload: 0, offset: tagOffset)
            _ = try readUInt32(end: end)
        case 11:
            try charge(payload: 0, offset: tagOffset)
            _ = try readUInt32(end: end)
            _ = try readUInt32(end: end)
        case 20, 21:
            guard depth < maxDepth else {
                throw .simpleDepthLimitExceeded(limit: maxDepth, offset: tagOffset)
            }
            try charge(payload: 0, offset: tagOffset)
            let contentEnd = try readContainerEnd(end: end)
            while position < contentEnd {
                try skipValue(end: contentEnd, depth: depth + 1)
                if tag == 20 { try skipValue(end: contentEnd, depth: depth + 1) }
            }
        default:
            throw .simpleUnknownTag(tag, offset: tagOffset)
        }
    }

    private mutating func skipString(end: Int, elementOffset: Int) throws(MotanCodecError) {
        let range = try readLengthPrefixed(end: end)
        try charge(payload: range.count, offset: elementOffset)
    }

    /// Counts one element with `payload` bytes of string or byte-array content, or throws if that
    /// would go over the budget. Payload is bounded by the body size, so the sum cannot overflow.
    @inline(__always)
    private mutating func charge(payload: Int, offset: Int) throws(MotanCodecError) {
        guard elementCount < budget.maxElements else {
            throw .simpleElementLimitExceeded(limit: budget.maxElements, offset: offset)
        }
        let cost = DecodeBudget.elementCost + payload
        guard cost <= budget.maxBytes - decodedBytes else {
            throw .simpleDecodedSizeLimitExceeded(limit: budget.maxBytes, offset: offset)
        }
        elementCount += 1
        decodedBytes += cost
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

    /// A string is one element; `elementOffset` is where errors about it point.
    private mutating func readString(end: Int, elementOffset: Int) throws(MotanCodecError) -> String {
        let range = try readLengthPrefixed(end: end)
        try charge(payload: range.count, offset: elementOffset)
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
