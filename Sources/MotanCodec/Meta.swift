/// The ordered key/value pairs of a frame, kept as the raw wire block (`key LF value ...`, no
/// trailing LF) so that decoding does not split it into strings and encoding is one copy.
///
/// Lookups scan the block; meta blocks hold a handful of pairs, so a scan beats building a
/// dictionary for every frame.
public struct Meta: Sendable {
    // The block lives in `storage[start ..< start + length]`. A decoded frame puts it in the spare
    // capacity of its body array (see `FrameView.makeFrame`), which is why `start` may lie beyond
    // `storage.count`; copy-on-write keeps those bytes untouched while this reference exists.
    @usableFromInline var storage: [UInt8]
    @usableFromInline var start: Int
    @usableFromInline var length: Int
    /// Decoded blocks may carry empty keys or values; we never send them.
    @usableFromInline var hasEmptyField: Bool

    public init() {
        storage = []
        start = 0
        length = 0
        hasEmptyField = false
    }

    /// Pairs that could not be sent (empty key or value, or an LF inside) are dropped.
    public init(_ pairs: some Sequence<(String, String)>) {
        self.init()
        for (key, value) in pairs { append(key, value) }
    }

    init(sharing storage: [UInt8], start: Int, length: Int, hasEmptyField: Bool) {
        self.storage = storage
        self.start = start
        self.length = length
        self.hasEmptyField = hasEmptyField
    }

    /// Copies a validated block (no trailing LF, even field count).
    init(validatedBlock bytes: UnsafeRawBufferPointer, hasEmptyField: Bool) {
        self.init(
            sharing: Array(bytes.assumingMemoryBound(to: UInt8.self)),
            start: 0, length: bytes.count, hasEmptyField: hasEmptyField)
    }

    @inlinable public var isEmpty: Bool { length == 0 }

    /// Size of the block as it goes on the wire.
    public var encodedLength: Int {
        if !hasEmptyField { return length }
        var total = 0
        forEachSendablePair { key, value in
            total += (total == 0 ? 0 : 1) + key.count + 1 + value.count
        }
        return total
    }

    /// Number of pairs, duplicates included.
    public var count: Int {
        withRawBytes { bytes in
            var pairs = 0
            MetaBytes.forEachPair(in: bytes) { _, _ in
                pairs += 1
                return true
            }
            return pairs
        }
    }

    /// The raw block, valid only inside `body`.
    @inlinable
    public func withRawBytes<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        if length == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        // withUnsafeBufferPointer is rethrows and cannot forward a typed error; carry it out.
        let result: Result<R, E> = storage.withUnsafeBufferPointer { pointer in
            let raw = UnsafeRawBufferPointer(start: pointer.baseAddress! + start, count: length)
            do throws(E) {
                return .success(try body(raw))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// The last value stored under `key` (later pairs win, as in the peers' maps).
    public subscript(key: String) -> String? {
        get {
            withRawBytes { bytes in
                MetaBytes.lastValue(forKey: key, in: bytes).map { MetaBytes.string(bytes, $0) }
            }
        }
        set {
            if let newValue {
                set(key, newValue)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    public func contains(key: String) -> Bool {
        withRawBytes { MetaBytes.lastValue(forKey: key, in: $0) != nil }
    }

    /// Adds a pair at the end without looking for an existing key. Returns false, leaving the
    /// meta unchanged, for a pair the wire cannot carry (empty key or value, or an LF inside).
    @discardableResult
    public mutating func append(_ key: String, _ value: String) -> Bool {
        guard Meta.isSendable(key), Meta.isSendable(value) else { return false }
        makeCompactOwned()
        if length > 0 { storage.append(MetaBytes.lf) }
        storage.append(contentsOf: key.utf8)
        storage.append(MetaBytes.lf)
        storage.append(contentsOf: value.utf8)
        length = storage.count
        return true
    }

    /// Replaces the value of `key` in place (dropping later duplicates) or appends the pair.
    /// Returns false, leaving the meta unchanged, for a pair the wire cannot carry.
    @discardableResult
    public mutating func set(_ key: String, _ value: String) -> Bool {
        guard Meta.isSendable(key), Meta.isSendable(value) else { return false }
        guard contains(key: key) else { return append(key, value) }
        rebuild { existingKey, existingValue, out in
            guard existingKey == key else {
                out.append((existingKey, existingValue))
                return
            }
            if !out.contains(where: { $0.0 == key }) { out.append((key, value)) }
        }
        return true
    }

    /// Removes every pair with this key; returns the value that a lookup would have returned.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> String? {
        guard let old = self[key] else { return nil }
        rebuild { existingKey, existingValue, out in
            if existingKey != key { out.append((existingKey, existingValue)) }
        }
        return old
    }

    private mutating func rebuild(
        _ transform: (String, String, inout [(String, String)]) -> Void
    ) {
        var pairs: [(String, String)] = []
        for (key, value) in self { transform(key, value, &pairs) }
        var rebuilt = Meta()
        for (key, value) in pairs {
            // Decoded empty fields survive a rebuild only as long as they are not re-sent.
            if !rebuilt.append(key, value) { rebuilt.appendUnchecked(key, value) }
        }
        self = rebuilt
    }

    private mutating func appendUnchecked(_ key: String, _ value: String) {
        makeCompactOwned()
        if length > 0 || !storage.isEmpty { storage.append(MetaBytes.lf) }
        storage.append(contentsOf: key.utf8)
        storage.append(MetaBytes.lf)
        storage.append(contentsOf: value.utf8)
        length = storage.count
        hasEmptyField = true
    }

    private mutating func makeCompactOwned() {
        if start == 0 && storage.count == length { return }
        storage = withRawBytes { Array($0.assumingMemoryBound(to: UInt8.self)) }
        start = 0
    }

    static func isSendable(_ text: String) -> Bool {
        guard !text.isEmpty else { return false }
        // memchr over the contiguous UTF-8: a generic `contains` dominated encoding time.
        if let found = text.utf8.withContiguousStorageIfAvailable({ bytes in
            MetaBytes.indexOfLF(in: UnsafeRawBufferPointer(bytes), from: 0) != nil
        }) {
            return !found
        }
        return !text.utf8.contains(MetaBytes.lf)
    }

    /// Pairs as they go on the wire: empty keys or values skipped.
    func forEachSendablePair(
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) {
        withRawBytes { bytes in
            MetaBytes.forEachPair(in: bytes) { key, value in
                if !key.isEmpty && !value.isEmpty {
                    body(
                        UnsafeRawBufferPointer(rebasing: bytes[key]),
                        UnsafeRawBufferPointer(rebasing: bytes[value]))
                }
                return true
            }
        }
    }
}

extension Meta: Sequence {
    public struct Iterator: IteratorProtocol {
        let meta: Meta
        var position = 0

        public mutating func next() -> (key: String, value: String)? {
            guard position < meta.length else { return nil }
            let start = position
            let pair: (key: String, value: String, next: Int) = meta.withRawBytes { bytes in
                var found = (key: "", value: "", next: bytes.count + 1)
                MetaBytes.forEachPair(in: UnsafeRawBufferPointer(rebasing: bytes[start...])) {
                    key, value in
                    let base = start
                    found = (
                        MetaBytes.string(bytes, (key.lowerBound + base)..<(key.upperBound + base)),
                        MetaBytes.string(
                            bytes, (value.lowerBound + base)..<(value.upperBound + base)),
                        value.upperBound + base + 1
                    )
                    return false
                }
                return found
            }
            position = pair.next
            return (pair.key, pair.value)
        }
    }

    public func makeIterator() -> Iterator { Iterator(meta: self) }
    public var underestimatedCount: Int { 0 }
}

extension Meta: Equatable {
    public static func == (lhs: Meta, rhs: Meta) -> Bool {
        guard lhs.length == rhs.length else { return false }
        return lhs.withRawBytes { left in rhs.withRawBytes { right in left.elementsEqual(right) } }
    }
}

extension Meta: ExpressibleByDictionaryLiteral {
    /// Keeps the literal's order, which is the order on the wire.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }
}

extension Meta: CustomStringConvertible {
    public var description: String {
        "[" + map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
