#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A growable byte buffer with separate reader and writer indices. Reference type on purpose: a
/// buffer handed to `TCPConnection.write(buffer:)` is owned by the connection until written, then
/// recycled through the loop's pool, so steady-state writes allocate nothing.
public final class LoopBuffer {
    /// The buffer's state, behind a pointer of its own: every read and write touches the
    /// indices, and as stored properties of a class each access would be a tracked dynamic
    /// exclusivity check. The buffer is used on one thread at a time (its loop's).
    private struct Indices {
        var base: UnsafeMutableRawPointer
        var capacity: Int
        var readerIndex = 0
        var writerIndex = 0
    }
    private let indices: UnsafeMutablePointer<Indices>

    public var base: UnsafeMutableRawPointer { indices.pointee.base }
    public var capacity: Int { indices.pointee.capacity }
    public var readerIndex: Int {
        get { indices.pointee.readerIndex }
        set { indices.pointee.readerIndex = newValue }
    }
    public var writerIndex: Int { indices.pointee.writerIndex }

    public init(capacity: Int) {
        let capacity = max(capacity, 16)
        indices = .allocate(capacity: 1)
        indices.initialize(
            to: Indices(base: .allocate(byteCount: capacity, alignment: 16), capacity: capacity))
    }

    deinit {
        indices.pointee.base.deallocate()
        indices.deinitialize(count: 1)
        indices.deallocate()
    }

    public var readableBytes: Int { writerIndex - readerIndex }
    public var writableBytes: Int { capacity - writerIndex }

    /// The bytes between reader and writer index; valid until the buffer is next mutated.
    public var readableView: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + readerIndex, count: readableBytes)
    }

    public func clear() {
        indices.pointee.readerIndex = 0
        indices.pointee.writerIndex = 0
    }

    public func reserveCapacity(_ minimum: Int) {
        guard minimum > capacity else { return }
        var newCapacity = capacity
        while newCapacity < minimum { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: writerIndex)
        base.deallocate()
        indices.pointee.base = newBase
        indices.pointee.capacity = newCapacity
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserveCapacity(writerIndex + bytes.count)
        (base + writerIndex).copyMemory(from: source, byteCount: bytes.count)
        indices.pointee.writerIndex += bytes.count
    }

    public func write(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
        if done == nil {
            for byte in bytes { write(byte: byte) }
        }
    }

    public func write(byte: UInt8) {
        reserveCapacity(writerIndex + 1)
        base.storeBytes(of: byte, toByteOffset: writerIndex, as: UInt8.self)
        indices.pointee.writerIndex += 1
    }

    /// Lets a caller (e.g. an encoder) write in place; `body` returns how many bytes it wrote.
    public func writeWithUnsafeMutableBytes(
        minimumWritableBytes: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int
    ) {
        reserveCapacity(writerIndex + minimumWritableBytes)
        let written = body(
            UnsafeMutableRawBufferPointer(start: base + writerIndex, count: writableBytes))
        precondition(written >= 0 && written <= writableBytes)
        indices.pointee.writerIndex += written
    }

    /// Counts `count` bytes the caller stored at `base + writerIndex` (after checking
    /// `writableBytes`) as written: the in-place form of `write`, for encoders.
    @inline(__always)
    public func moveWriterIndex(forwardBy count: Int) {
        precondition(count >= 0 && count <= writableBytes, "wrote past the buffer's capacity")
        indices.pointee.writerIndex += count
    }

    public func readBytes() -> [UInt8] {
        let out = Array(readableView)
        indices.pointee.readerIndex = writerIndex
        return out
    }
}

extension UVEventLoop {
    /// A buffer from the loop's pool (a standard-size chunk when `minimumCapacity` fits one),
    /// for encoding output in place; hand it to `TCPConnection.write(buffer:)`, which recycles
    /// it once written. Loop thread only.
    public func takeWriteBuffer(minimumCapacity: Int) -> LoopBuffer {
        preconditionInEventLoop()
        return bufferPool.take(minimumCapacity: minimumCapacity)
    }

    /// Returns a buffer that was never handed to a connection. Loop thread only.
    public func recycleWriteBuffer(_ buffer: LoopBuffer) {
        preconditionInEventLoop()
        bufferPool.recycle(buffer)
    }
}

/// Per-loop free list of standard-size buffers. Loop thread only. The list lives behind a
/// pointer: it is touched on every write, and a class's stored array would cost a dynamic
/// exclusivity check per access.
final class LoopBufferPool {
    let chunkSize: Int
    private let free: UnsafeMutablePointer<[LoopBuffer]>
    private let maxPooled = 256

    init(chunkSize: Int) {
        self.chunkSize = chunkSize
        free = .allocate(capacity: 1)
        free.initialize(to: [])
    }

    deinit {
        free.deinitialize(count: 1)
        free.deallocate()
    }

    @inline(__always)
    func take(minimumCapacity: Int) -> LoopBuffer {
        if minimumCapacity <= chunkSize, let buffer = free.pointee.popLast() {
            return buffer
        }
        return LoopBuffer(capacity: max(minimumCapacity, chunkSize))
    }

    /// Only standard-size buffers are kept; an oversize one is freed so one large write does not pin memory.
    @inline(__always)
    func recycle(_ buffer: LoopBuffer) {
        guard buffer.capacity == chunkSize, free.pointee.count < maxPooled else { return }
        buffer.clear()
        free.pointee.append(buffer)
    }

    func drain() { free.pointee.removeAll() }
}
