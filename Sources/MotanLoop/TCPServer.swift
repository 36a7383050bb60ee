import CLibUV
import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Decides what happens to an accepted connection; runs on the connection's loop. Return nil to refuse it.
public typealias ConnectionInitializer = @Sendable (TCPConnection) -> TCPConnectionDelegate?

/// One listening socket on one loop, owning its `uv_tcp_t`.
final class TCPListener: LoopHandleOwner, @unchecked Sendable {
    let loop: UVEventLoop
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    /// Dropped once the listener closes: it often holds the server's owner, which holds the server.
    private var initializer: ConnectionInitializer?
    private(set) var isClosed = false
    private var closed: (() -> Void)?

    private var rawHandle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// Binds and listens; on failure the handle is already closed. Loop thread only.
    init(
        loop: UVEventLoop, address: TCPAddress, backlog: Int32,
        initializer: @escaping ConnectionInitializer
    )
        throws(LoopError)
    {
        loop.preconditionInEventLoop()
        self.loop = loop
        self.initializer = initializer
        handle = .allocate(capacity: 1)
        // init_ex creates the socket now, so SO_REUSEPORT can be set before bind: each loop gets its
        // own listening socket and the kernel spreads connections, which then never change threads.
        uv_tcp_init_ex(loop.uvLoop, handle, UInt32(address.isIPv6 ? AF_INET6 : AF_INET))
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        do {
            var fd = uv_os_fd_t()
            try check(uv_fileno(rawHandle, &fd), address)
            guard cmotan_set_reuseport(fd) == 0 else {
                throw LoopError.bindFailed(address: address.description, UVError(-errno))
            }
            try address.withSockAddr { (addr) throws(LoopError) in
                try check(uv_tcp_bind(handle, addr, 0), address)
            }
            try check(
                uv_listen(
                    UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self), backlog,
                    { server, status in
                        let listener = Unmanaged<TCPListener>.fromOpaque(server!.pointee.data)
                            .takeUnretainedValue()
                        listener.accept(status: status)
                    }), address)
        } catch let error as LoopError {
            close()
            throw error
        } catch {
            fatalError("unreachable")
        }
    }

    private func check(_ rc: Int32, _ address: TCPAddress) throws(LoopError) {
        if rc != 0 { throw LoopError.bindFailed(address: address.description, UVError(rc)) }
    }

    var localPort: Int {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                uv_tcp_getsockname(handle, $0, &length)
            }
        }
        return TCPAddress(&storage)?.port ?? 0
    }

    private func accept(status: Int32) {
        guard status == 0 else {
            loop.logger.warning("accept failed: \(UVError(status))")
            return
        }
        let connection = TCPConnection(loop: loop, state: .connecting)
        let rc = uv_accept(
            UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self),
            UnsafeMutableRawPointer(connection.handle).assumingMemoryBound(to: uv_stream_t.self))
        guard rc == 0 else {
            loop.logger.warning("uv_accept failed: \(UVError(rc))")
            connection.close(.socketError(UVError(rc)))
            return
        }
        connection.becomeOpen()
        guard let delegate = initializer?(connection) else {
            connection.close(.local)
            return
        }
        connection.delegate = delegate
        connection.startReading()
    }

    /// Stops accepting. Connections already accepted stay open.
    func close(then done: (() -> Void)? = nil) {
        guard !isClosed else {
            done?()
            return
        }
        isClosed = true
        closed = done
        initializer = nil
        uv_close(rawHandle) { raw in
            let listener = Unmanaged<TCPListener>.fromOpaque(raw!.pointee.data).takeRetainedValue()
            listener.handle.deallocate()
            let done = listener.closed
            listener.closed = nil
            done?()
        }
    }

    func closeForLoopShutdown() { close() }
}

/// A listening TCP server with one listener per loop of a group, all on the same port.
public final class TCPServer: @unchecked Sendable {
    public let address: TCPAddress
    private let listeners: [TCPListener]

    private init(address: TCPAddress, listeners: [TCPListener]) {
        self.address = address
        self.listeners = listeners
    }

    /// Binds `host:port` on every loop of `group` (port 0 picks a free port, shared by all loops).
    /// A port some other socket listens on fails with `bindFailed` (EADDRINUSE), even though this
    /// server's own listeners share theirs. Blocks the calling thread until all listeners are up;
    /// never call it on a loop thread.
    public static func bind(
        host: String, port: Int, on group: UVEventLoopGroup, backlog: Int32 = 1024,
        initializer: @escaping ConnectionInitializer
    ) throws(LoopError) -> TCPServer {
        UVEventLoop.preconditionNotOnLoopThread("TCPServer.bind")
        // Port 0 needs no check: the kernel never hands out a port that is in use.
        if port != 0 { try claimPort(TCPAddress(host: host, port: port)) }
        var listeners: [TCPListener] = []
        var boundPort = port
        for loop in group.loops {
            let address = TCPAddress(host: host, port: boundPort)
            let result: Result<TCPListener, LoopError> = loop.runSync {
                Result { () throws(LoopError) in
                    try TCPListener(loop: loop, address: address, backlog: backlog, initializer: initializer)
                }
            }
            switch result {
            case .success(let listener):
                listeners.append(listener)
                if boundPort == 0 { boundPort = loop.runSync { listener.localPort } }
            case .failure(let error):
                closeAll(listeners)
                throw error
            }
        }
        return TCPServer(address: TCPAddress(host: host, port: boundPort), listeners: listeners)
    }

    public var port: Int { address.port }

    /// Stops accepting on every loop and waits until each listener's handle is closed. Never call
    /// on a loop thread: use `close() async` from async code, `close(then:)` from a loop.
    public func close() {
        Self.closeAll(listeners)
    }

    /// Stops accepting on every loop and returns once each listener's handle is closed.
    public func close() async {
        await withCheckedContinuation { continuation in close { continuation.resume() } }
    }

    /// Stops accepting on every loop; `done` runs once every listener's handle is closed. Any thread.
    public func close(then done: @escaping @Sendable () -> Void) {
        let countdown = Countdown(listeners.count, then: done)
        for listener in listeners {
            // A loop that refuses work has shut down and closed its listener already.
            if !listener.loop.execute({ listener.close { countdown.tick() } }) { countdown.tick() }
        }
    }

    private static func closeAll(_ listeners: [TCPListener]) {
        UVEventLoop.preconditionNotOnLoopThread("TCPServer.close")
        let done = DispatchSemaphore(value: 0)
        let closing = listeners.filter { listener in listener.loop.execute { listener.close { done.signal() } } }
        for _ in closing { done.wait() }
    }

    /// Fails with EADDRINUSE if any socket listens on `address`. Every listener of a server sets
    /// SO_REUSEPORT so the kernel can spread connections over the loops, and with it a second
    /// server of the same user would bind the same port and silently take half the connections.
    /// A socket without SO_REUSEPORT cannot share a port with anything that listens on it, so
    /// binding one first (and closing it again) proves the port is free. SO_REUSEADDR is set, as
    /// libuv sets it on the listeners, so connections of an earlier server in TIME_WAIT do not count.
    ///
    /// What remains is a race: another server that claims the same port between this check and
    /// our first `listen` (or before its own) still shares it.
    private static func claimPort(_ address: TCPAddress) throws(LoopError) {
        try address.withSockAddr { (addr) throws(LoopError) in
            let family = Int32(addr.pointee.sa_family)
            let fd = socket(family, socketStreamType, 0)
            guard fd >= 0 else { throw LoopError.bindFailed(address: address.description, UVError(-errno)) }
            defer { closeSocket(fd) }
            var on: Int32 = 1
            var off: Int32 = 0
            let size = socklen_t(MemoryLayout<Int32>.size)
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size)
            // As libuv binds IPv6 listeners: dual stack.
            if family == AF_INET6 { _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, size) }
            let length = socklen_t(
                family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
            guard bindSocket(fd, addr, length) == 0 else {
                throw LoopError.bindFailed(address: address.description, UVError(-errno))
            }
        }
    }
}

#if canImport(Glibc)
    private let socketStreamType = Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue)
    private func closeSocket(_ fd: Int32) { _ = Glibc.close(fd) }
    private func bindSocket(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
        Glibc.bind(fd, addr, length)
    }
#else
    private let socketStreamType = SOCK_STREAM
    private func closeSocket(_ fd: Int32) { _ = Darwin.close(fd) }
    private func bindSocket(_ fd: Int32, _ addr: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
        Darwin.bind(fd, addr, length)
    }
#endif
