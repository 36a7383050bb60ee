import CLibUV

/// Receives a connection's events, always on the connection's loop.
public protocol TCPConnectionDelegate: AnyObject {
    /// `bytes` points into the loop's shared read buffer: consume or copy it before returning.
    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer)
    /// The peer shut down its sending side. The default closes the connection.
    func connectionDidReadEOF(_ connection: TCPConnection)
    /// Pending write bytes crossed the high (false) or low (true) watermark.
    func connectionWritabilityChanged(_ connection: TCPConnection, isWritable: Bool)
    /// Called exactly once, after the handle is gone, for every connection that was ever open.
    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason)
}

extension TCPConnectionDelegate {
    public func connectionDidReadEOF(_ connection: TCPConnection) { connection.close(.remoteClosed) }
    public func connectionWritabilityChanged(_ connection: TCPConnection, isWritable: Bool) {}
}

/// A TCP stream owning one `uv_tcp_t`, bound to one loop for life. All methods must be called on
/// that loop. Writes are queued into pooled chunks and go out in one `uv_write` per `flush()`, one
/// `uv_buf_t` per chunk; every write's completion runs exactly once, with an error if the
/// connection closes first.
public final class TCPConnection: LoopHandleOwner, @unchecked Sendable {
    public enum State: Sendable, Equatable {
        case connecting, open, closing, closed
    }

    public let loop: UVEventLoop
    public private(set) var state: State
    public var delegate: TCPConnectionDelegate?
    public private(set) var closeReason: CloseReason?
    /// Free for the owner of the connection to attach its own state.
    public var userData: AnyObject?

    /// Above this many unwritten bytes the connection reports itself not writable...
    public var highWatermark = 1 << 20
    /// ...and writable again once they drain below this.
    public var lowWatermark = 256 << 10
    public private(set) var isWritable = true
    public private(set) var pendingWriteBytes = 0
    public private(set) var isWriteShutDown = false
    public private(set) var isReadEOF = false

    let handle: UnsafeMutablePointer<uv_tcp_t>
    private var connectRequest: UnsafeMutablePointer<uv_connect_t>?
    private var shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>?
    private var connectCompletion: ((Result<TCPConnection, LoopError>) -> Void)?
    private var connectTimer: LoopTimer?
    private var connectAddress: TCPAddress?
    private var wasOpen = false

    private var queued: [LoopBuffer] = []
    private var queuedCompletions: [WriteCompletion] = []
    private var queuedBytes = 0
    private var sealedTail = false
    private var shutdownCompletion: WriteCompletion?

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
    }
    private var rawHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// A handle on `loop`, not yet connected; the object lives until its close callback.
    init(loop: UVEventLoop, state: State) {
        self.loop = loop
        self.state = state
        handle = .allocate(capacity: 1)
        uv_tcp_init(loop.uvLoop, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    // MARK: connect

    /// Connects to `address` on `loop`; `completion` runs exactly once, on the loop. Loop thread only.
    public static func connect(
        to address: TCPAddress, on loop: UVEventLoop, timeout: Duration,
        delegate: TCPConnectionDelegate,
        completion: @escaping (Result<TCPConnection, LoopError>) -> Void
    ) {
        loop.preconditionInEventLoop()
        let connection = TCPConnection(loop: loop, state: .connecting)
        connection.delegate = delegate
        connection.connectAddress = address
        connection.connectCompletion = completion
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        connection.connectRequest = request
        request.pointee.data = Unmanaged.passUnretained(connection).toOpaque()
        let rc: Int32
        do {
            rc = try address.withSockAddr { (addr) throws(LoopError) -> Int32 in
                uv_tcp_connect(request, connection.handle, addr) { request, status in
                    let connection = Unmanaged<TCPConnection>.fromOpaque(request!.pointee.data)
                        .takeUnretainedValue()
                    connection.connectFinished(status: status)
                }
            }
        } catch {
            connection.failConnect(error, reason: .protocolViolation(error.description))
            return
        }
        if rc != 0 {
            connection.failConnect(
                .connectFailed(address: address.description, UVError(rc)), reason: .socketError(UVError(rc))
            )
            return
        }
        let ms = timeout.roundedUpMilliseconds
        connection.connectTimer = loop.scheduleTimer(after: timeout) { [unowned connection] in
            connection.connectTimer = nil
            // The connect callback then reports ECANCELED; remember why for the caller.
            connection.connectTimeoutMilliseconds = ms
            connection.close(.connectTimeout)
        }
    }

    /// Connects from any thread.
    public static func connect(
        to address: TCPAddress, on loop: UVEventLoop, timeout: Duration,
        delegate: @escaping @Sendable () -> TCPConnectionDelegate
    ) async throws(LoopError) -> TCPConnection {
        let result: Result<TCPConnection, LoopError> = await withCheckedContinuation { continuation in
            loop.execute {
                connect(to: address, on: loop, timeout: timeout, delegate: delegate()) {
                    continuation.resume(returning: $0)
                }
            }
        }
        return try result.get()
    }

    private var connectTimeoutMilliseconds: UInt64?

    private func failConnect(_ error: LoopError, reason: CloseReason) {
        let completion = connectCompletion
        connectCompletion = nil
        close(reason)
        completion?(.failure(error))
    }

    private func connectFinished(status: Int32) {
        connectTimer?.cancel()
        connectTimer = nil
        let completion = connectCompletion
        connectCompletion = nil
        let address = connectAddress?.description ?? "?"
        if status == 0 && state == .connecting {
            becomeOpen()
            startReading()
            completion?(.success(self))
            flush()
            return
        }
        let error: LoopError
        if closeReason == .connectTimeout {
            error = .connectTimeout(address: address, milliseconds: connectTimeoutMilliseconds ?? 0)
        } else if closeReason == .loopShutdown {
            error = .loopShutDown
        } else {
            error = .connectFailed(address: address, UVError(status))
        }
        close(.socketError(UVError(status)))
        completion?(.failure(error))
    }

    // MARK: open

    func becomeOpen() {
        state = .open
        wasOpen = true
        uv_tcp_nodelay(handle, 1)
    }

    /// Starts delivering reads to the delegate. Connections made by `connect` read from the start.
    public func startReading() {
        loop.preconditionInEventLoop()
        guard state == .open else { return }
        uv_read_start(
            stream,
            { handle, _, buffer in
                let connection = Unmanaged<TCPConnection>.fromOpaque(handle!.pointee.data)
                    .takeUnretainedValue()
                let read = connection.loop.readBuffer
                buffer!.pointee = uv_buf_init(
                    read.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(read.count))
            },
            { stream, nread, _ in
                let connection = Unmanaged<TCPConnection>.fromOpaque(stream!.pointee.data)
                    .takeUnretainedValue()
                connection.didRead(nread)
            })
    }

    public func stopReading() {
        loop.preconditionInEventLoop()
        guard state == .open else { return }
        uv_read_stop(stream)
    }

    private func didRead(_ nread: Int) {
        if nread > 0 {
            delegate?.connectionDidRead(
                self, UnsafeRawBufferPointer(start: loop.readBuffer.baseAddress, count: nread))
        } else if nread == Int(UVError.eof.code) {
            isReadEOF = true
            delegate?.connectionDidReadEOF(self)
            // Both directions are done (or nobody is listening): nothing more can happen on this socket.
            if isWriteShutDown || delegate == nil { close(.remoteClosed) }
        } else if nread < 0 {
            close(.socketError(UVError(Int32(nread))))
        }
    }

    /// The socket's descriptor while the connection is open (diagnostics; do not read or write it).
    public var fileDescriptor: Int32? {
        guard state == .open || state == .connecting else { return nil }
        var fd = uv_os_fd_t()
        return uv_fileno(rawHandle, &fd) == 0 ? Int32(fd) : nil
    }

    public var remoteAddress: TCPAddress? {
        guard state == .open || state == .connecting else { return connectAddress }
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                uv_tcp_getpeername(handle, $0, &length)
            }
        }
        return rc == 0 ? TCPAddress(&storage) : connectAddress
    }

    // MARK: writes

    /// Queues a copy of `bytes`. Small writes share a pooled chunk; nothing is sent until `flush()`.
    public func write(_ bytes: UnsafeRawBufferPointer, completion: WriteCompletion? = nil) {
        loop.preconditionInEventLoop()
        guard acceptsWrites(completion) else { return }
        let count = bytes.count
        if count > 0 {
            if !sealedTail, let tail = queued.last, tail.writableBytes >= count {
                tail.write(bytes)
            } else {
                let chunk = loop.bufferPool.take(minimumCapacity: count)
                chunk.write(bytes)
                queued.append(chunk)
                sealedTail = false
            }
        }
        enqueued(count, completion)
    }

    public func write(_ bytes: [UInt8], completion: WriteCompletion? = nil) {
        bytes.withUnsafeBytes { write($0, completion: completion) }
    }

    /// Queues `buffer`'s readable bytes without copying; the connection owns the buffer from now on.
    public func write(buffer: LoopBuffer, completion: WriteCompletion? = nil) {
        loop.preconditionInEventLoop()
        guard acceptsWrites(completion) else { return }
        queued.append(buffer)
        sealedTail = true
        enqueued(buffer.readableBytes, completion)
    }

    public func writeAndFlush(_ bytes: [UInt8], completion: WriteCompletion? = nil) {
        write(bytes, completion: completion)
        flush()
    }

    private func acceptsWrites(_ completion: WriteCompletion?) -> Bool {
        if state == .closing || state == .closed {
            completion?(.failure(.connectionClosed(closeReason ?? .local)))
            return false
        }
        if isWriteShutDown {
            completion?(.failure(.connectionClosed(.local)))
            return false
        }
        return true
    }

    private func enqueued(_ count: Int, _ completion: WriteCompletion?) {
        if let completion { queuedCompletions.append(completion) }
        queuedBytes += count
        pendingWriteBytes += count
        if isWritable && pendingWriteBytes > highWatermark {
            isWritable = false
            delegate?.connectionWritabilityChanged(self, isWritable: false)
        }
    }

    /// Sends everything queued in one `uv_write`.
    public func flush() {
        loop.preconditionInEventLoop()
        guard state == .open, !queued.isEmpty || !queuedCompletions.isEmpty else { return }
        let request = loop.writeRequestPool.take()
        swap(&request.chunks, &queued)
        swap(&request.completions, &queuedCompletions)
        request.byteCount = queuedBytes
        queuedBytes = 0
        sealedTail = false
        request.connection = self
        request.request.pointee.data = Unmanaged.passRetained(request).toOpaque()
        let count = request.prepareBuffers()
        let rc = uv_write(request.request, stream, request.buffers, count) { request, status in
            let write = Unmanaged<WriteRequest>.fromOpaque(request!.pointee.data).takeRetainedValue()
            write.connection!.writeFinished(write, status: status)
        }
        if rc != 0 {
            Unmanaged<WriteRequest>.fromOpaque(request.request.pointee.data!).release()
            writeFinished(request, status: rc)
        }
    }

    private func writeFinished(_ request: WriteRequest, status: Int32) {
        pendingWriteBytes -= request.byteCount
        let result: Result<Void, LoopError>
        if status == 0 {
            result = .success(())
        } else if status == UVError.canceled.code {
            result = .failure(.connectionClosed(closeReason ?? .local))
        } else {
            result = .failure(.writeFailed(UVError(status)))
        }
        for chunk in request.chunks { loop.bufferPool.recycle(chunk) }
        let completions = request.completions
        loop.writeRequestPool.recycle(request)
        for completion in completions { completion(result) }
        if status != 0 && status != UVError.canceled.code {
            close(.socketError(UVError(status)))
        }
        if !isWritable && pendingWriteBytes < lowWatermark && state == .open {
            isWritable = true
            delegate?.connectionWritabilityChanged(self, isWritable: true)
        }
    }

    /// Half-close: flushes, then shuts down the sending side once all writes are out. Reading goes on.
    public func shutdownWrite(completion: WriteCompletion? = nil) {
        loop.preconditionInEventLoop()
        guard state == .open, !isWriteShutDown else {
            completion?(.failure(.connectionClosed(closeReason ?? .local)))
            return
        }
        flush()
        isWriteShutDown = true
        shutdownCompletion = completion
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        shutdownRequest = request
        request.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let rc = uv_shutdown(request, stream) { request, status in
            let connection = Unmanaged<TCPConnection>.fromOpaque(request!.pointee.data)
                .takeUnretainedValue()
            connection.shutdownFinished(status: status)
        }
        if rc != 0 { shutdownFinished(status: rc) }
    }

    private func shutdownFinished(status: Int32) {
        let completion = shutdownCompletion
        shutdownCompletion = nil
        if status == 0 {
            completion?(.success(()))
            if isReadEOF { close(.remoteClosed) }
        } else {
            completion?(
                .failure(
                    status == UVError.canceled.code
                        ? .connectionClosed(closeReason ?? .local) : .writeFailed(UVError(status))))
        }
    }

    // MARK: close

    /// Closes the connection once; later calls do nothing. Unflushed writes fail with the reason now,
    /// in-flight ones when libuv cancels them, before `connectionDidClose`.
    public func close(_ reason: CloseReason = .local) {
        loop.preconditionInEventLoop()
        guard state == .connecting || state == .open else { return }
        state = .closing
        closeReason = reason
        connectTimer?.cancel()
        connectTimer = nil
        let failed = queuedCompletions
        queuedCompletions.removeAll()
        for chunk in queued { loop.bufferPool.recycle(chunk) }
        queued.removeAll()
        pendingWriteBytes -= queuedBytes
        queuedBytes = 0
        uv_close(rawHandle) { raw in
            let connection = Unmanaged<TCPConnection>.fromOpaque(raw!.pointee.data).takeRetainedValue()
            connection.closeFinished()
        }
        for completion in failed { completion(.failure(.connectionClosed(reason))) }
    }

    private func closeFinished() {
        state = .closed
        handle.deallocate()
        connectRequest?.deallocate()
        connectRequest = nil
        shutdownRequest?.deallocate()
        shutdownRequest = nil
        let delegate = self.delegate
        self.delegate = nil
        userData = nil
        if wasOpen {
            delegate?.connectionDidClose(self, reason: closeReason ?? .local)
        }
    }

    func closeForLoopShutdown() { close(.loopShutdown) }
}
