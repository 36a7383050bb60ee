/// Where the simple encoder puts bytes. One encoder serves a growing array, a byte count taken
/// before writing, and memory sized from that count.
protocol SimpleSink {
    /// Bytes put so far.
    var count: Int { get }
    mutating func put(_ byte: UInt8)
    mutating func put(_ bytes: UnsafeRawBufferPointer)
    /// Overwrites four bytes already put (a container's length, known once its content is).
    mutating func patchUInt32(_ value: UInt32, at offset: Int)
}

extension Array: SimpleSink where Element == UInt8 {
    @inline(__always)
    mutating func put(_ byte: UInt8) { append(byte) }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }

    mutating func patchUInt32(_ value: UInt32, at offset: Int) {
        withUnsafeMutableBytes { $0.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self) }
    }
}

/// Counts without writing.
struct SimpleByteCounter: SimpleSink {
    var count = 0

    @inline(__always)
    mutating func put(_ byte: UInt8) { count += 1 }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) { count += bytes.count }

    mutating func patchUInt32(_ value: UInt32, at offset: Int) {}
}

/// Writes into memory its caller sized with a `SimpleByteCounter` pass; a write past the end
/// traps rather than overrunning it.
struct SimpleMemoryWriter: SimpleSink {
    let base: UnsafeMutableRawPointer?
    let capacity: Int
    var count = 0

    init(_ destination: UnsafeMutableRawBufferPointer) {
        base = destination.baseAddress
        capacity = destination.count
    }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        precondition(count < capacity, "simple value larger than the space sized for it")
        base.unsafelyUnwrapped.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= capacity - count, "simple value larger than the space sized for it")
        if let source = bytes.baseAddress, bytes.count > 0 {
            (base.unsafelyUnwrapped + count).copyMemory(from: source, byteCount: bytes.count)
        }
        count += bytes.count
    }

    mutating func patchUInt32(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset <= count - 4, "patch outside what was written")
        base.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }
}
