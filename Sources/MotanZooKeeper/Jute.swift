/// Builds one jute record (spec: zookeeper-protocol.md §1): big-endian, no tags, no padding.
struct JuteWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func int(_ value: Int32) {
        let v = UInt32(bitPattern: value)
        bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    mutating func long(_ value: Int64) {
        int(Int32(truncatingIfNeeded: value >> 32))
        int(Int32(truncatingIfNeeded: value))
    }

    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }

    mutating func buffer(_ value: [UInt8]?) {
        guard let value else { return int(-1) }
        int(Int32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ value: String?) {
        guard let value else { return int(-1) }
        let utf8 = Array(value.utf8)
        int(Int32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func strings(_ values: [String]) {
        int(Int32(values.count))
        for value in values { string(value) }
    }

    mutating func acls(_ values: [ZooKeeperACL]) {
        int(Int32(values.count))
        for acl in values {
            int(acl.permissions.rawValue)
            string(acl.scheme)
            string(acl.id)
        }
    }

    /// The record with its 4-byte length prefix, ready for the socket.
    var framed: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count + 4)
        let n = UInt32(bytes.count)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
        out.append(contentsOf: bytes)
        return out
    }
}

/// Reads one jute record; every read is bounds-checked and fails with `.marshallingError`.
struct JuteReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ count: Int) throws(ZooKeeperError) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else { throw .marshallingError }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func int() throws(ZooKeeperError) -> Int32 {
        let b = try take(4)
        var v: UInt32 = 0
        for byte in b { v = v << 8 | UInt32(byte) }
        return Int32(bitPattern: v)
    }

    mutating func long() throws(ZooKeeperError) -> Int64 {
        let high = Int64(try int())
        let low = Int64(UInt32(bitPattern: try int()))
        return high << 32 | low
    }

    mutating func bool() throws(ZooKeeperError) -> Bool { try take(1).first! != 0 }

    mutating func buffer() throws(ZooKeeperError) -> [UInt8]? {
        let count = try int()
        if count < 0 { return nil }
        return Array(try take(Int(count)))
    }

    mutating func string() throws(ZooKeeperError) -> String? {
        guard let raw = try buffer() else { return nil }
        return String(decoding: raw, as: UTF8.self)
    }

    mutating func strings() throws(ZooKeeperError) -> [String] {
        let count = try int()
        guard count > 0 else { return [] }
        // Each element takes at least 4 bytes: a lying count cannot make us allocate much.
        guard Int(count) <= remaining / 4 else { throw .marshallingError }
        var out: [String] = []
        out.reserveCapacity(Int(count))
        for _ in 0..<count { out.append(try string() ?? "") }
        return out
    }

    mutating func stat() throws(ZooKeeperError) -> ZooKeeperStat {
        ZooKeeperStat(
            czxid: try long(), mzxid: try long(), ctime: try long(), mtime: try long(),
            version: try int(), cversion: try int(), aversion: try int(),
            ephemeralOwner: try long(), dataLength: try int(), numChildren: try int(),
            pzxid: try long())
    }
}
