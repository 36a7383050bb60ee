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

    struct Shape {
        /// Length once the one tolerated trailing LF is removed.
        var length: Int
        var fieldCount: Int
        var hasEmptyField: Bool
    }

    static func shape(of bytes: UnsafeRawBufferPointer) -> Shape {
        var length = bytes.count
        if length > 0, bytes[length - 1] == lf { length -= 1 }
        guard length > 0 else { return Shape(length: 0, fieldCount: 0, hasEmptyField: false) }
        var fields = 1
        var hasEmpty = bytes[0] == lf || bytes[length - 1] == lf
        var previousWasLF = false
        for i in 0..<length {
            let isLF = bytes[i] == lf
            if isLF {
                fields += 1
                if previousWasLF { hasEmpty = true }
            }
            previousWasLF = isLF
        }
        return Shape(length: length, fieldCount: fields, hasEmptyField: hasEmpty)
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
