import CLibUV

public typealias WriteCompletion = (Result<Void, LoopError>) -> Void

/// One `uv_write` in flight: the request, the chunks it writes (one `uv_buf_t` each) and the
/// completions of the writes those chunks carry. Pooled per loop, so a steady stream of writes
/// allocates nothing. Plain memory rather than an object: the write path then pays neither
/// reference counting nor dynamic exclusivity checks for it.
struct WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t>
    private(set) var buffers: UnsafeMutablePointer<uv_buf_t>
    private var bufferCapacity: Int
    var chunks: [LoopBuffer] = []
    var completions: [WriteCompletion] = []
    var byteCount = 0
    var connection: Unmanaged<TCPConnection>?
    /// The next free request while this one is pooled.
    var next: UnsafeMutablePointer<WriteRequest>?

    init() {
        request = .allocate(capacity: 1)
        bufferCapacity = 8
        buffers = .allocate(capacity: bufferCapacity)
    }

    /// A fresh request whose `uv_write_t` points back at it.
    static func make() -> UnsafeMutablePointer<WriteRequest> {
        let pointer = UnsafeMutablePointer<WriteRequest>.allocate(capacity: 1)
        pointer.initialize(to: WriteRequest())
        pointer.pointee.request.pointee.data = UnsafeMutableRawPointer(pointer)
        return pointer
    }

    static func destroy(_ pointer: UnsafeMutablePointer<WriteRequest>) {
        pointer.pointee.request.deallocate()
        pointer.pointee.buffers.deallocate()
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }

    /// Points one `uv_buf_t` at each chunk's readable bytes.
    mutating func prepareBuffers() -> UInt32 {
        let count = chunks.count
        if count > bufferCapacity {
            buffers.deallocate()
            bufferCapacity = count
            buffers = .allocate(capacity: bufferCapacity)
        }
        var i = 0
        while i < count {
            let chunk = chunks[i]
            buffers[i] = uv_buf_init(
                (chunk.base + chunk.readerIndex).assumingMemoryBound(to: CChar.self),
                UInt32(chunk.readableBytes))
            i += 1
        }
        return UInt32(count)
    }
}

/// Per-loop free list of write requests. Loop thread only.
final class WriteRequestPool {
    private struct List {
        var head: UnsafeMutablePointer<WriteRequest>?
        var count = 0
    }
    private let list: UnsafeMutablePointer<List>

    init() {
        list = .allocate(capacity: 1)
        list.initialize(to: List())
    }

    deinit {
        drain()
        list.deinitialize(count: 1)
        list.deallocate()
    }

    @inline(__always)
    func take() -> UnsafeMutablePointer<WriteRequest> {
        guard let request = list.pointee.head else { return WriteRequest.make() }
        list.pointee.head = request.pointee.next
        list.pointee.count -= 1
        request.pointee.next = nil
        return request
    }

    /// Takes back a request whose chunks and completions were already handed on.
    @inline(__always)
    func recycle(_ request: UnsafeMutablePointer<WriteRequest>) {
        request.pointee.byteCount = 0
        request.pointee.connection = nil
        guard list.pointee.count < 1024 else {
            WriteRequest.destroy(request)
            return
        }
        request.pointee.next = list.pointee.head
        list.pointee.head = request
        list.pointee.count += 1
    }

    func drain() {
        while let request = list.pointee.head {
            list.pointee.head = request.pointee.next
            WriteRequest.destroy(request)
        }
        list.pointee.count = 0
    }
}
