import CLibUV
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An object that owns one libuv handle. At loop shutdown the loop walks its handles and asks each
/// owner to close, so nothing stays open and every owner still closes exactly once.
protocol LoopHandleOwner: AnyObject {
    func closeForLoopShutdown()
}

/// One libuv loop on its own thread. Everything that touches the loop's handles runs on that
/// thread; other threads hand work over with `execute`.
public final class EventLoop: @unchecked Sendable {
    private enum Lifecycle: Int {
        case running = 0
        case shuttingDown = 1
        case stopped = 2
    }

    public let name: String
    public let logger: Logger

    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let tasks = MPSCQueue<@Sendable () -> Void>()
    private let lifecycle = Atomic<Int>(Lifecycle.running.rawValue)
    private let started = DispatchSemaphore(value: 0)
    private var thread = pthread_t()
    private let loopThreadID = Atomic<UInt>(0)

    // Loop-thread state below: no locks, only ever touched from the loop thread.

    /// Every read callback fills this one buffer; reads are consumed synchronously, so one per loop suffices.
    let readBuffer: UnsafeMutableRawBufferPointer
    let bufferPool: ByteBufferPool
    let writeRequestPool = WriteRequestPool()
    private var droppedTasks = 0

    public static let readBufferSize = 64 * 1024

    public init(name: String = "motan-loop", logger: Logger? = nil) {
        _ = ignoreSIGPIPE
        self.name = name
        self.logger = logger ?? Logger(label: "motan.loop.\(name)")
        uvLoop = .allocate(capacity: 1)
        let rc = uv_loop_init(uvLoop)
        precondition(rc == 0, "uv_loop_init failed: \(UVError(rc))")
        wakeup = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        bufferPool = ByteBufferPool(chunkSize: Self.readBufferSize)

        uv_async_init(uvLoop, wakeup) { handle in
            let loop = Unmanaged<EventLoop>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
            loop.drainTasks()
        }
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()

        let retained = Unmanaged.passRetained(self).toOpaque()
        let rcThread = pthread_create(
            &thread, nil,
            { arg in
                let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
                loop.runOnThread()
                return nil
            }, retained)
        precondition(rcThread == 0, "pthread_create failed: \(rcThread)")
        started.wait()
    }

    deinit {
        readBuffer.deallocate()
        uvLoop.deallocate()
        wakeup.deallocate()
    }

    private func runOnThread() {
        cmotan_set_thread_name(String(name.prefix(15)))
        loopThreadID.store(currentThreadID(), ordering: .releasing)
        started.signal()
        uv_run(uvLoop, UV_RUN_DEFAULT)
        // Tasks submitted after the last drain can no longer touch handles; they are dropped.
        while tasks.pop() != nil { droppedTasks += 1 }
        if droppedTasks > 0 {
            logger.debug("dropped \(droppedTasks) tasks submitted after shutdown")
        }
        let rc = uv_loop_close(uvLoop)
        if rc != 0 {
            logger.error("uv_loop_close: \(UVError(rc)); handles were left open")
        }
        bufferPool.drain()
        writeRequestPool.drain()
        lifecycle.store(Lifecycle.stopped.rawValue, ordering: .releasing)
    }

    /// True on this loop's thread.
    public var inEventLoop: Bool {
        currentThreadID() == loopThreadID.load(ordering: .acquiring)
    }

    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "must be called on event loop \(name)", file: file, line: line)
    }

    /// Runs `work` on the loop thread, in submission order per submitting thread. Callable from any
    /// thread, including the loop's own (the work then runs on a later turn, never inline).
    public func execute(_ work: @escaping @Sendable () -> Void) {
        tasks.push(work)
        uv_async_send(wakeup)
    }

    /// Runs `work` on the loop and returns its result to an async caller.
    public func submit<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            execute { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Runs `work` on the loop and blocks the calling thread for the result. Never call on the loop.
    public func runSync<T>(_ work: @escaping () -> T) -> T {
        precondition(!inEventLoop, "runSync would deadlock on its own loop")
        precondition(!isShutDown, "runSync on event loop \(name), which is shut down")
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        nonisolated(unsafe) let work = work
        execute {
            result = work()
            done.signal()
        }
        done.wait()
        return result!
    }

    private func drainTasks() {
        while let task = tasks.pop() {
            task()
        }
        if lifecycle.load(ordering: .acquiring) == Lifecycle.shuttingDown.rawValue {
            closeAllHandles()
        }
    }

    private func closeAllHandles() {
        // Owners close themselves (and may free memory) during the walk's callbacks, so collect first.
        var owners: [LoopHandleOwner] = []
        withUnsafeMutablePointer(to: &owners) { ownersPointer in
            uv_walk(
                uvLoop,
                { handle, arg in
                    guard let handle, uv_is_closing(handle) == 0, let data = handle.pointee.data else {
                        return
                    }
                    let owners = arg!.assumingMemoryBound(to: [LoopHandleOwner].self)
                    if let owner = Unmanaged<AnyObject>.fromOpaque(data).takeUnretainedValue()
                        as? LoopHandleOwner
                    {
                        owners.pointee.append(owner)
                    }
                }, ownersPointer)
        }
        for owner in owners {
            owner.closeForLoopShutdown()
        }
        if uv_is_closing(UnsafeMutableRawPointer(wakeup).assumingMemoryBound(to: uv_handle_t.self)) == 0 {
            uv_close(UnsafeMutableRawPointer(wakeup).assumingMemoryBound(to: uv_handle_t.self), nil)
        }
    }

    /// Closes every handle on the loop and waits for the thread to finish. Call from outside the loop.
    public func syncShutdown() {
        precondition(!inEventLoop, "syncShutdown would deadlock on its own loop")
        if lifecycle.compareExchange(
            expected: Lifecycle.running.rawValue, desired: Lifecycle.shuttingDown.rawValue,
            ordering: .acquiringAndReleasing
        ).exchanged {
            uv_async_send(wakeup)
            pthread_join(thread, nil)
        }
    }

    /// True once the loop thread has finished; work submitted from then on never runs.
    public var isShutDown: Bool {
        lifecycle.load(ordering: .acquiring) == Lifecycle.stopped.rawValue
    }

    /// The loop's epoll (or kqueue) descriptor, for diagnostics.
    public var backendFileDescriptor: Int32 { uv_backend_fd(uvLoop) }

    /// Loop time in milliseconds, as libuv caches it for the current iteration.
    public var now: UInt64 {
        preconditionInEventLoop()
        return uv_now(uvLoop)
    }

    /// The open handles on this loop, excluding the loop's own wake-up handle. Handles already closing
    /// are not counted: libuv frees them by the end of the current iteration.
    /// A diagnostics and leak-testing aid: must be called on the loop.
    public func liveHandleCount() -> Int {
        preconditionInEventLoop()
        var count = 0
        uv_walk(
            uvLoop,
            { handle, arg in
                if uv_is_closing(handle) == 0 { arg!.assumingMemoryBound(to: Int.self).pointee += 1 }
            }, &count)
        return count - 1
    }
}

/// A fixed set of loops; servers listen on all of them, clients pick one with `next()`.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let cursor = Atomic<Int>(0)

    public init(numberOfLoops: Int = System.coreCount, namePrefix: String = "motan-loop") {
        precondition(numberOfLoops > 0)
        loops = (0..<numberOfLoops).map { EventLoop(name: "\(namePrefix)-\($0)") }
    }

    public func next() -> EventLoop {
        let index = cursor.add(1, ordering: .relaxed).oldValue
        return loops[index % loops.count]
    }

    public func syncShutdown() {
        for loop in loops { loop.syncShutdown() }
    }
}

public enum System {
    public static var coreCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

@inline(__always)
private func currentThreadID() -> UInt {
    #if canImport(Darwin)
        return UInt(bitPattern: pthread_self())
    #else
        return UInt(pthread_self())
    #endif
}

/// libuv writes with plain `write`/`writev`, so a write to a socket the peer has reset raises
/// SIGPIPE, whose default action kills the process. Ignore it once, before any loop exists, unless
/// the application installed a handler of its own; the write then fails with EPIPE like any other error.
private let ignoreSIGPIPE: Void = {
    var current = sigaction()
    if sigaction(SIGPIPE, nil, &current) == 0 {
        #if canImport(Glibc)
            let isDefault = current.__sigaction_handler.sa_handler == nil
        #else
            let isDefault = current.__sigaction_u.__sa_handler == nil
        #endif
        if isDefault { signal(SIGPIPE, SIG_IGN) }
    }
}()
