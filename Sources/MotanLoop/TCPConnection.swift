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

    /// The connection's state at one moment, for threads other than its loop's.
    public struct Snapshot: Sendable, Equatable {
        public var state: State
        public var closeReason: CloseReason?
        public var isWritable: Bool
        public var pendingWriteBytes: Int
        public var isWriteShutDown: Bool
        public var isReadEOF: Bool
    }

    public let loop: UVEventLoop

    // The public properties below belong to the loop thread: each access checks that it runs
    // there, because a read from another thread races the loop's writes. Other threads use
    // `snapshot()`. Inside the class the unchecked storage is used directly.

    public var state: State {
        loop.preconditionInEventLoop()
        return currentState
    }
    public var delegate: TCPConnectionDelegate? {
        get {
            loop.preconditionInEventLoop()
            return currentDelegate
        }
        set {
            loop.preconditionInEventLoop()
            currentDelegate = newValue
        }
    }
    public var closeReason: CloseReason? {
        loop.preconditionInEventLoop()
        return currentCloseReason
    }
    /// Free for the owner of the connection to attach its own state.
    public var userData: AnyObject? {
        get {
            loop.preconditionInEventLoop()
            return currentUserData
        }
        set {
            loop.preconditionInEventLoop()
            currentUserData = newValue
        }
    }
    /// Above this many unwritten bytes the connection reports itself not writable...
    public var highWatermark: Int {
        get {
            loop.preconditionInEventLoop()
            return currentHighWatermark
        }
        set {
            loop.preconditionInEventLoop()
            currentHighWatermark = newValue
        }
    }
    /// ...and writable again once they drain below this.
    public var lowWatermark: Int {
        get {
            loop.preconditionInEventLoop()
            return currentLowWatermark
        }
        set {
            loop.preconditionInEventLoop()
            currentLowWatermark = newValue
        }
    }
    public var isWritable: Bool {
        loop.preconditionInEventLoop()
        return writable
    }
    public var pendingWriteBytes: Int {
        loop.preconditionInEventLoop()
        return pendingBytes
    }
    public var isWriteShutDown: Bool {
        loop.preconditionInEventLoop()
        return writeShutDown
    }
    public var isReadEOF: Bool {
        loop.preconditionInEventLoop()
        return readEOF
    }

    /// The connection's state, read on its loop. Any thread; throws once the loop has shut down.
    public func snapshot() async throws(LoopError) -> Snapshot {
        let result: Result<Snapshot, LoopError> = await withCheckedContinuation { continuation in
            let accepted = loop.execute { continuation.resume(returning: .success(self.currentSnapshot)) }
            if !accepted { continuation.resume(returning: .failure(.loopShutDown)) }
        }
        return try result.get()
    }

    /// Loop thread only.
    public var currentSnapshot: Snapshot {
        loop.preconditionInEventLoop()
        return Snapshot(
            state: currentState, closeReason: currentCloseReason, isWritable: writable,
            pendingWriteBytes: pendingBytes, isWriteShutDown: writeShutDown, isReadEOF: readEOF)
    }

    /// The state the read and write paths touch on every call. Kept behind a pointer: stored
    /// properties of a class pay a dynamic exclusivity check on each access, this memory none.
    private struct Hot {
        var state: State
        var delegate: TCPConnectionDelegate?
        var highWatermark = 1 << 20
        var lowWatermark = 256 << 10
        var writable = true
        var pendingBytes = 0
        var writeShutDown = false
        var readEOF = false
        var queued: [LoopBuffer] = []
        var queuedCompletions: [WriteCompletion] = []
        var queuedBytes = 0
        var sealedTail = false
    }
    private let hot: UnsafeMutablePointer<Hot>

    private var currentState: State {
        get { hot.pointee.state }
        set { hot.pointee.state = newValue }
    }
    private var currentDelegate: TCPConnectionDelegate? {
        get { hot.pointee.delegate }
        set { hot.pointee.delegate = newValue }
    }
    private var currentCloseReason: CloseReason?
    private var currentUserData: AnyObject?
    private var currentHighWatermark: Int {
        get { hot.pointee.highWatermark }
        set { hot.pointee.highWatermark = newValue }
    }
    private var currentLowWatermark: Int {
        get { hot.pointee.lowWatermark }
        set { hot.pointee.lowWatermark = newValue }
    }
    private var writable: Bool {
        get { hot.pointee.writable }
        set { hot.pointee.writable = newValue }
    }
    private var pendingBytes: Int {
        get { hot.pointee.pendingBytes }
        set { hot.pointee.pendingBytes = newValue }
    }
    private var writeShutDown: Bool {
        get { hot.pointee.writeShutDown }
        set { hot.pointee.writeShutDown = newValue }
    }
    private var readEOF: Bool {
        get { hot.pointee.readEOF }
        set { hot.pointee.readEOF = newValue }
    }

    let handle: UnsafeMutablePointer<uv_tcp_t>
    private var connectRequest: UnsafeMutablePointer<uv_connect_t>?
    private var shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>?
    private var connectCompletion: ((Result<TCPConnection, LoopError>) -> Void)?
    private var connectTimer: LoopTimer?
    private var connectAddress: TCPAddress?
    private var wasOpen = false

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
        hot = .allocate(capacity: 1)
        hot.initialize(to: Hot(state: state))
        handle = .allocate(capacity: 1)
        uv_tcp_init(loop.uvLoop, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    deinit {
        hot.deinitialize(count: 1)
        hot.deallocate()
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
        connection.currentDelegate = delegate
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
            let accepted = loop.execute {
                connect(to: address, on: loop, timeout: timeout, delegate: delegate()) {
                    continuation.resume(returning: $0)
                }
            }
            if !accepted { continuation.resume(returning: .failure(.loopShutDown)) }
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
        if status == 0 && currentState == .connecting {
            becomeOpen()
            startReading()
            completion?(.success(self))
            flush()
            return
        }
        let error: LoopError
        if currentCloseReason == .connectTimeout {
            error = .connectTimeout(address: address, milliseconds: connectTimeoutMilliseconds ?? 0)
        } else if currentCloseReason == .loopShutdown {
            error = .loopShutDown
        } else {
            error = .connectFailed(address: address, UVError(status))
        }
        close(.socketError(UVError(status)))
        completion?(.failure(error))
    }

    // MARK: open

    func becomeOpen() {
        currentState = .open
        wasOpen = true
        uv_tcp_nodelay(handle, 1)
    }

    /// Starts delivering reads to the delegate. Connections made by `connect` read from the start.
    public func startReading() {
        loop.preconditionInEventLoop()
        guard currentState == .open else { return }
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
        guard currentState == .open else { return }
        uv_read_stop(stream)
    }

    private func didRead(_ nread: Int) {
        if nread > 0 {
            currentDelegate?.connectionDidRead(
                self, UnsafeRawBufferPointer(start: loop.readBuffer.baseAddress, count: nread))
        } else if nread == Int(UVError.eof.code) {
            readEOF = true
            currentDelegate?.connectionDidReadEOF(self)
            // Both directions are done (or nobody is listening): nothing more can happen on this socket.
            if writeShutDown || currentDelegate == nil { close(.remoteClosed) }
        } else if nread < 0 {
            close(.socketError(UVError(Int32(nread))))
        }
    }

    /// The socket's descriptor while the connection is open (diagnostics; do not read or write it).
    public var fileDescriptor: Int32? {
        loop.preconditionInEventLoop()
        guard currentState == .open || currentState == .connecting else { return nil }
        var fd = uv_os_fd_t()
        return uv_fileno(rawHandle, &fd) == 0 ? Int32(fd) : nil
    }

    public var remoteAddress: TCPAddress? {
        loop.preconditionInEventLoop()
        guard currentState == .open || currentState == .connecting else { return connectAddress }
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
            let hot = self.hot
            if !hot.pointee.sealedTail, let tail = hot.pointee.queued.last, tail.writableBytes >= count {
                tail.write(bytes)
            } else {
                let chunk = loop.bufferPool.take(minimumCapacity: count)
                chunk.write(bytes)
                hot.pointee.queued.append(chunk)
                hot.pointee.sealedTail = false
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
        hot.pointee.queued.append(buffer)
        hot.pointee.sealedTail = true
        enqueued(buffer.readableBytes, completion)
    }

    public func writeAndFlush(_ bytes: [UInt8], completion: WriteCompletion? = nil) {
        write(bytes, completion: completion)
        flush()
    }

    @inline(__always)
    private func acceptsWrites(_ completion: WriteCompletion?) -> Bool {
        let hot = self.hot
        if _fastPath(hot.pointee.state == .open && !hot.pointee.writeShutDown) { return true }
        return refuseWrite(completion)
    }

    private func refuseWrite(_ completion: WriteCompletion?) -> Bool {
        if currentState == .closing || currentState == .closed {
            completion?(.failure(.connectionClosed(currentCloseReason ?? .local)))
            return false
        }
        if writeShutDown {
            completion?(.failure(.connectionClosed(.local)))
            return false
        }
        return true
    }

    @inline(__always)
    private func enqueued(_ count: Int, _ completion: WriteCompletion?) {
        let hot = self.hot
        if let completion { hot.pointee.queuedCompletions.append(completion) }
        hot.pointee.queuedBytes += count
        hot.pointee.pendingBytes += count
        if hot.pointee.writable && hot.pointee.pendingBytes > hot.pointee.highWatermark {
            hot.pointee.writable = false
            currentDelegate?.connectionWritabilityChanged(self, isWritable: false)
        }
    }

    /// Sends everything queued in one `uv_write`.
    public func flush() {
        loop.preconditionInEventLoop()
        let hot = self.hot
        guard hot.pointee.state == .open,
            !hot.pointee.queued.isEmpty || !hot.pointee.queuedCompletions.isEmpty
        else { return }
        let request = loop.writeRequestPool.take()
        swap(&request.pointee.chunks, &hot.pointee.queued)
        if !hot.pointee.queuedCompletions.isEmpty {
            swap(&request.pointee.completions, &hot.pointee.queuedCompletions)
        }
        request.pointee.byteCount = hot.pointee.queuedBytes
        hot.pointee.queuedBytes = 0
        hot.pointee.sealedTail = false
        // Unretained: the connection outlives its writes, which libuv completes (or cancels)
        // before the handle's close callback releases it.
        request.pointee.connection = Unmanaged.passUnretained(self)
        let count = request.pointee.prepareBuffers()
        let rc = uv_write(request.pointee.request, stream, request.pointee.buffers, count) { uvRequest, status in
            let request = uvRequest!.pointee.data.assumingMemoryBound(to: WriteRequest.self)
            request.pointee.connection!._withUnsafeGuaranteedRef { $0.writeFinished(request, status: status) }
        }
        if rc != 0 { writeFinished(request, status: rc) }
    }

    private func writeFinished(_ request: UnsafeMutablePointer<WriteRequest>, status: Int32) {
        let hot = self.hot
        hot.pointee.pendingBytes -= request.pointee.byteCount
        let pool = loop.bufferPool
        for chunk in request.pointee.chunks { pool.recycle(chunk) }
        request.pointee.chunks.removeAll(keepingCapacity: true)
        var completions: [WriteCompletion] = []
        if !request.pointee.completions.isEmpty { swap(&completions, &request.pointee.completions) }
        loop.writeRequestPool.recycle(request)
        if !completions.isEmpty {
            let result: Result<Void, LoopError>
            if status == 0 {
                result = .success(())
            } else if status == UVError.canceled.code {
                result = .failure(.connectionClosed(currentCloseReason ?? .local))
            } else {
                result = .failure(.writeFailed(UVError(status)))
            }
            for completion in completions { completion(result) }
        }
        if status != 0 && status != UVError.canceled.code {
            close(.socketError(UVError(status)))
        }
        if !hot.pointee.writable && hot.pointee.pendingBytes < hot.pointee.lowWatermark
            && hot.pointee.state == .open
        {
            hot.pointee.writable = true
            currentDelegate?.connectionWritabilityChanged(self, isWritable: true)
        }
    }

    /// Half-close: flushes, then shuts down the sending side once all writes are out. Reading goes on.
    public func shutdownWrite(completion: WriteCompletion? = nil) {
        loop.preconditionInEventLoop()
        guard currentState == .open, !writeShutDown else {
            completion?(.failure(.connectionClosed(currentCloseReason ?? .local)))
            return
        }
        flush()
        writeShutDown = true
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
            if readEOF { close(.remoteClosed) }
        } else {
            completion?(
                .failure(
                    status == UVError.canceled.code
                        ? .connectionClosed(currentCloseReason ?? .local) : .writeFailed(UVError(status))))
        }
    }

    // MARK: close

    /// Closes the connection once; later calls do nothing. Unflushed writes fail with the reason now,
    /// in-flight ones when libuv cancels them, before `connectionDidClose`.
    public func close(_ reason: CloseReason = .local) {
        loop.preconditionInEventLoop()
        guard currentState == .connecting || currentState == .open else { return }
        currentState = .closing
        currentCloseReason = reason
        connectTimer?.cancel()
        connectTimer = nil
        let failed = hot.pointee.queuedCompletions
        hot.pointee.queuedCompletions.removeAll()
        for chunk in hot.pointee.queued { loop.bufferPool.recycle(chunk) }
        hot.pointee.queued.removeAll()
        pendingBytes -= hot.pointee.queuedBytes
        hot.pointee.queuedBytes = 0
        uv_close(rawHandle) { raw in
            let connection = Unmanaged<TCPConnection>.fromOpaque(raw!.pointee.data).takeRetainedValue()
            connection.closeFinished()
        }
        for completion in failed { completion(.failure(.connectionClosed(reason))) }
    }

    private func closeFinished() {
        currentState = .closed
        handle.deallocate()
        connectRequest?.deallocate()
        connectRequest = nil
        shutdownRequest?.deallocate()
        shutdownRequest = nil
        let delegate = currentDelegate
        currentDelegate = nil
        currentUserData = nil
        if wasOpen {
            delegate?.connectionDidClose(self, reason: currentCloseReason ?? .local)
        }
    }

    func closeForLoopShutdown() { close(.loopShutdown) }
}
