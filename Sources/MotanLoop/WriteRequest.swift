import CLibUV

public typealias WriteCompletion = (Result<Void, LoopError>) -> Void

/// One `uv_write` in flight: the request, the chunks it writes (one `uv_buf_t` each) and the
/// completions of the writes those chunks carry. Pooled per loop, so a steady stream of writes
/// allocates nothing.
final class WriteRequest {
    let request: UnsafeMutablePointer<uv_write_t>
    private(set) var buffers: UnsafeMutablePointer<uv_buf_t>
    private var bufferCapacity: Int
    var chunks: [LoopBuffer] = []
    var completions: [WriteCompletion] = []
    var byteCount = 0
    unowned(unsafe) var connection: TCPConnection?

    init() {
        request = .allocate(capacity: 1)
        bufferCapacity = 8
        buffers = .allocate(capacity: bufferCapacity)
    }

    deinit {
        request.deallocate()
        buffers.deallocate()
    }

    /// Points one `uv_buf_t` at each chunk's readable bytes.
    func prepareBuffers() -> UInt32 {
        if chunks.count > bufferCapacity {
            buffers.deallocate()
            bufferCapacity = chunks.count
            buffers = .allocate(capacity: bufferCapacity)
        }
        for (i, chunk) in chunks.enumerated() {
            buffers[i] = uv_buf_init(
                (chunk.base + chunk.readerIndex).assumingMemoryBound(to: CChar.self),
                UInt32(chunk.readableBytes))
        }
        return UInt32(chunks.count)
    }

    func reset() {
        chunks.removeAll(keepingCapacity: true)
        completions.removeAll(keepingCapacity: true)
        byteCount = 0
        connection = nil
        request.pointee.data = nil
    }
}

final class WriteRequestPool {
    private var free: [WriteRequest] = []

    func take() -> WriteRequest { free.popLast() ?? WriteRequest() }

    func recycle(_ request: WriteRequest) {
        request.reset()
        if free.count < 1024 { free.append(request) }
    }

    func drain() { free.removeAll() }
}
