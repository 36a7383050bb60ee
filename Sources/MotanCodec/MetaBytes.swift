#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Scanning helpers for a raw meta block (`key LF value LF key LF value`), shared by the owned
/// `Meta` and the borrowed `FrameView` so that both read the wire bytes without splitting them.
enum MetaBytes {
    static let lf: UInt8 = 0x0A

    /// What one pass over a meta block finds: its shape, and where the values the server
    /// routes by (`M_p`, `M_m`, `M_g`; the last pair of each wins) lie. Ranges are relative to
    /// the start of the block.
    struct Shape {
        /// Length once the one tolerated trailing LF is removed.
        var length: Int
        var fieldCount: Int
        var hasEmptyField: Bool
        // Packed: every frame view carries a copy of this, and views are passed by value.
        private var serviceSpan = Span.absent
        private var methodSpan = Span.absent
        private var groupSpan = Span.absent

        init(length: Int, fieldCount: Int, hasEmptyField: Bool) {
            self.length = length
            self.fieldCount = fieldCount
            self.hasEmptyField = hasEmptyField
        }

        var service: Range<Int>? {
            get { serviceSpan.range }
            set { serviceSpan = Span(newValue) }
        }
        var method: Range<Int>? {
            get { methodSpan.range }
            set { methodSpan = Span(newValue) }
        }
        var group: Range<Int>? {
            get { groupSpan.range }
            set { groupSpan = Span(newValue) }
        }
    }

    /// A range inside one meta block, whose size field is 32 bits.
    struct Span {
        var start: UInt32
        var end: UInt32
        static let absent = Span(start: .max, end: .max)

        init(start: UInt32, end: UInt32) {
            self.start = start
            self.end = end
        }

        init(_ range: Range<Int>?) {
            guard let range else {
                self = .absent
                return
            }
            self.init(
                start: UInt32(truncatingIfNeeded: range.lowerBound), end: UInt32(truncatingIfNeeded: range.upperBound))
        }

        var range: Range<Int>? { start == .max ? nil : Int(start)..<Int(end) }
    }

    /// One pass, eight bytes at a time: field count, empty fields, and the routing values.
    static func shape(of bytes: UnsafeRawBufferPointer) -> Shape {
        var length = bytes.count
        if length > 0, bytes[length - 1] == lf { length -= 1 }
        guard length > 0, let base = bytes.baseAddress else {
            return Shape(length: 0, fieldCount: 0, hasEmptyField: false)
        }
        var scan = FieldScan(base: base)
        var position = 0
        // Metas are short and their fields shorter: a word at a time beats a memchr per field.
        while position + 8 <= length {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt64.self))
            var hits = lineFeedBytes(in: word)
            while hits != 0 {
                scan.field(endingAt: position + hits.trailingZeroBitCount >> 3)
                hits &= hits &- 1
            }
            position += 8
        }
        while position < length {
            if base.load(fromByteOffset: position, as: UInt8.self) == lf { scan.field(endingAt: position) }
            position += 1
        }
        scan.field(endingAt: length)
        scan.shape.length = length
        return scan.shape
    }

    /// The high bit of every byte of `word` that is LF, and no other bit (exact: no borrow
    /// runs between bytes).
    @inline(__always)
    private static func lineFeedBytes(in word: UInt64) -> UInt64 {
        let low7: UInt64 = 0x7F7F_7F7F_7F7F_7F7F
        let x = word ^ 0x0A0A_0A0A_0A0A_0A0A
        return ~(((x & low7) &+ low7) | x | low7)
    }

    /// Fields as the scan meets them; keys are remembered until their value ends.
    private struct FieldScan {
        let base: UnsafeRawPointer
        var shape = Shape(length: 0, fieldCount: 0, hasEmptyField: false)
        var start = 0
        var keyStart = 0
        var keyLength = 0

        @inline(__always)
        mutating func field(endingAt end: Int) {
            if end == start { shape.hasEmptyField = true }
            if shape.fieldCount & 1 == 0 {
                keyStart = start
                keyLength = end - start
            } else if keyLength == 3 && base.load(fromByteOffset: keyStart, as: UInt8.self) == UInt8(ascii: "M")
                && base.load(fromByteOffset: keyStart + 1, as: UInt8.self) == UInt8(ascii: "_")
            {
                switch base.load(fromByteOffset: keyStart + 2, as: UInt8.self) {
                case UInt8(ascii: "p"): shape.service = start..<end
                case UInt8(ascii: "m"): shape.method = start..<end
                case UInt8(ascii: "g"): shape.group = start..<end
                default: break
                }
            }
            shape.fieldCount += 1
            start = end + 1
        }
    }

    /// Calls `body` with the key and value ranges of every pair in order; stops when it returns
    /// false. `bytes` must be a validated block (even field count, no trailing LF).
    @inline(__always)
    static func forEachPair(
        in bytes: UnsafeRawBufferPointer,
        _ body: (_ key: Range<Int>, _ value: Range<Int>) -> Bool
    ) {
        var position = 0
        let end = bytes.count
        while position < end {
            let keyEnd = indexOfLF(in: bytes, from: position) ?? end
            let valueStart = Swift.min(keyEnd + 1, end)
            let valueEnd = indexOfLF(in: bytes, from: valueStart) ?? end
            if !body(position..<keyEnd, valueStart..<valueEnd) { return }
            position = valueEnd + 1
        }
    }

    @inline(__always)
    static func indexOfLF(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let hit = memchr(base + start, Int32(lf), bytes.count - start) else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// The value of the last pair with this key: duplicates resolve like the peers' maps do.
    static func lastValue(forKey key: String, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        if let found = key.utf8.withContiguousStorageIfAvailable({ keyBytes in
            lastValue(forKey: UnsafeRawBufferPointer(keyBytes), in: bytes)
        }) {
            return found
        }
        let copy = Array(key.utf8)
        return copy.withUnsafeBytes { lastValue(forKey: $0, in: bytes) }
    }

    static func lastValue(
        forKey key: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer
    ) -> Range<Int>? {
        var result: Range<Int>?
        forEachPair(in: bytes) { keyRange, valueRange in
            if keyRange.count == key.count,
                key.count == 0
                    || memcmp(bytes.baseAddress! + keyRange.lowerBound, key.baseAddress!, key.count) == 0
            {
                result = valueRange
            }
            return true
        }
        return result
    }

    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}
