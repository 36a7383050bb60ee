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

/// A per-loop value of a higher layer (a timer wheel, a heartbeat manager), kept by the loop for
/// as long as it runs and let go of when it finishes, so nothing it holds outlives the loop.
package protocol LoopLocal: AnyObject, Sendable {
    /// Runs once, on the loop thread, after the loop has run dry and before it drops the value:
    /// the place to forget work that can no longer happen.
    func loopDidFinish()
}

/// Every loop thread carries its loop here (unretained), so any code can tell it is on a loop
/// thread, and blocking calls can refuse to run on one.
private let loopThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key, nil)
    precondition(rc == 0, "pthread_key_create failed: \(rc)")
    return key
}()

/// One libuv loop on its own thread. Everything that touches the loop's handles runs on that
/// thread; other threads hand work over with `execute`.
public final class UVEventLoop: @unchecked Sendable {
    private enum Lifecycle: Int {
        /// `shuttingDown`: handles are being closed, work is still accepted. `refusing`: the loop
        /// ran dry; `execute` says no from here on.
        case running = 0
        case shuttingDown = 1
        case refusing = 2
    }

    public let name: String
    public let logger: Logger

    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    /// Runs on every turn once shutdown starts: closes whatever callbacks opened after the first
    /// sweep (a reconnect timer set in a close callback, say), so the loop always runs dry.
    /// Unreferenced, so it never keeps the loop alive itself; as an idle handle it keeps the poll
    /// from blocking while handles remain.
    private let reaper: UnsafeMutablePointer<uv_idle_t>
    private let tasks = MPSCQueue<@Sendable () -> Void>()
    private let lifecycle = Atomic<Int>(Lifecycle.running.rawValue)
    /// Threads inside `execute`; the loop waits for them before its final drain, so no accepted
    /// work is ever lost between the check and the push.
    private let submitters = Atomic<Int>(0)
    private let started = DispatchSemaphore(value: 0)
    private var thread = pthread_t()
    /// Who waits for the loop thread to finish; set once it has.
    private let completion = Mutex<(finished: Bool, waiters: [@Sendable () -> Void])>((false, []))
    /// Values of higher layers, one per type; dropped when the loop finishes.
    private let locals = Mutex<(finished: Bool, values: [ObjectIdentifier: any LoopLocal])>((false, [:]))

    // Loop-thread state below: no locks, only ever touched from the loop thread.

    /// Every read callback fills this one buffer; reads are consumed synchronously, so one per loop suffices.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// `loopThreadKey`, copied: the global is lazily made, and reading it costs a once-check on
    /// every loop-thread check.
    private let threadKey = loopThreadKey
    let bufferPool: LoopBufferPool
    let writeRequestPool = WriteRequestPool()

    public static let readBufferSize = 64 * 1024

    public init(name: String = "motan-loop", logger: Logger? = nil) {
        _ = ignoreSIGPIPE
        self.name = name
        self.logger = logger ?? Logger(label: "motan.loop.\(name)")
        uvLoop = .allocate(capacity: 1)
        let rc = uv_loop_init(uvLoop)
        precondition(rc == 0, "uv_loop_init failed: \(UVError(rc))")
        wakeup = .allocate(capacity: 1)
        reaper = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: Self.readBufferSize, alignment: 16)
        bufferPool = LoopBufferPool(chunkSize: Self.readBufferSize)

        uv_async_init(uvLoop, wakeup) { handle in
            let loop = Unmanaged<UVEventLoop>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
            loop.drainTasks()
        }
        wakeup.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_idle_init(uvLoop, reaper)
        reaper.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_unref(UnsafeMutableRawPointer(reaper).assumingMemoryBound(to: uv_handle_t.self))

        let retained = Unmanaged.passRetained(self).toOpaque()
        let rcThread = pthread_create(
            &thread, nil,
            { arg in
                let loop = Unmanaged<UVEventLoop>.fromOpaque(arg!).takeRetainedValue()
                loop.runOnThread()
                return nil
            }, retained)
        precondition(rcThread == 0, "pthread_create failed: \(rcThread)")
        // Nobody joins: shutdown waits for the end of the loop's work instead, which async callers
        // can await without holding a thread.
        pthread_detach(thread)
        started.wait()
    }

    deinit {
        readBuffer.deallocate()
        uvLoop.deallocate()
        wakeup.deallocate()
        reaper.deallocate()
    }

    private func runOnThread() {
        cmotan_set_thread_name(String(name.prefix(15)))
        pthread_setspecific(loopThreadKey, Unmanaged.passUnretained(self).toOpaque())
        started.signal()
        uv_run(uvLoop, UV_RUN_DEFAULT)
        lifecycle.store(Lifecycle.refusing.rawValue, ordering: .sequentiallyConsistent)
        while submitters.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
        runLateTasks()
        uv_close(UnsafeMutableRawPointer(reaper).assumingMemoryBound(to: uv_handle_t.self), nil)
        uv_run(uvLoop, UV_RUN_NOWAIT)
        let rc = uv_loop_close(uvLoop)
        if rc != 0 {
            logger.error("uv_loop_close: \(UVError(rc)); handles were left open")
        }
        bufferPool.drain()
        writeRequestPool.drain()
        finishLocals()
        pthread_setspecific(loopThreadKey, nil)
        let waiters = completion.withLock { state in
            state.finished = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter() }
    }

    private func finishLocals() {
        let values = locals.withLock { state in
            state.finished = true
            defer { state.values.removeAll() }
            return Array(state.values.values)
        }
        for value in values { value.loopDidFinish() }
    }

    /// The loop's one value of type `T`, made by `make` on first use. Any thread. A loop that has
    /// finished keeps nothing: each call then gets a fresh value, which nothing on the loop uses.
    package func local<T: LoopLocal>(_ type: T.Type, orMake make: () -> T) -> T {
        locals.withLock { state in
            if let existing = state.values[ObjectIdentifier(type)] { return existing as! T }
            let value = make()
            if !state.finished { state.values[ObjectIdentifier(type)] = value }
            return value
        }
    }

    /// Work accepted while the loop was shutting down still runs, so whoever submitted it gets an
    /// answer; anything it opens is closed straight away and its callbacks report the shutdown.
    private func runLateTasks() {
        var ranAny = true
        while ranAny {
            ranAny = false
            while let task = tasks.pop() {
                task()
                ranAny = true
            }
            if ranAny {
                closeAllHandles()
                uv_run(uvLoop, UV_RUN_DEFAULT)
            }
        }
    }

    /// True on this loop's thread.
    public var inEventLoop: Bool {
        pthread_getspecific(threadKey) == Unmanaged.passUnretained(self).toOpaque()
    }

    /// The loop whose thread this is; nil off every loop thread.
    public static var current: UVEventLoop? {
        pthread_getspecific(loopThreadKey).map { Unmanaged<UVEventLoop>.fromOpaque($0).takeUnretainedValue() }
    }

    /// True on the thread of any loop.
    public static var isLoopThread: Bool { pthread_getspecific(loopThreadKey) != nil }

    /// Stops a blocking call made on a loop thread. Blocking there stalls every connection of that
    /// loop, and two loops waiting on each other never wake up again, so it is always a bug.
    public static func preconditionNotOnLoopThread(
        _ operation: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line
    ) {
        if let loop = current {
            preconditionFailure(
                "\(operation()) blocks, and was called on the thread of event loop \(loop.name): it could "
                    + "deadlock. Use its async form, or hand the work over with execute.",
                file: file, line: line)
        }
    }

    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "must be called on event loop \(name)", file: file, line: line)
    }

    /// Runs `work` on the loop thread, in submission order per submitting thread. Callable from any
    /// thread, including the loop's own (the work then runs on a later turn, never inline).
    /// Returns false, and never runs `work`, once the loop has shut down; accepted work always runs.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        submitters.add(1, ordering: .sequentiallyConsistent)
        defer { submitters.subtract(1, ordering: .sequentiallyConsistent) }
        guard lifecycle.load(ordering: .sequentiallyConsistent) != Lifecycle.refusing.rawValue else {
            return false
        }
        tasks.push(work)
        uv_async_send(wakeup)
        return true
    }

    /// Runs `work` on the loop and returns its result to an async caller.
    public func submit<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = execute { continuation.resume(with: Result { try work() }) }
            if !accepted { continuation.resume(throwing: LoopError.loopShutDown) }
        }
    }

    /// Runs `work` on the loop and blocks the calling thread for the result; nil if the loop has
    /// shut down. Never call on any loop's thread: use `submit` from async code.
    public func tryRunSync<T>(_ work: @escaping () -> T) -> T? {
        Self.preconditionNotOnLoopThread("runSync on event loop \(name)")
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        nonisolated(unsafe) let work = work
        let accepted = execute {
            result = work()
            done.signal()
        }
        guard accepted else { return nil }
        done.wait()
        return result
    }

    /// `tryRunSync` for loops known to be running; calling it on a shut-down loop is a programming error.
    public func runSync<T>(_ work: @escaping () -> T) -> T {
        guard let result = tryRunSync(work) else {
            preconditionFailure("runSync on event loop \(name), which is shut down")
        }
        return result
    }

    /// At most this many tasks run per wake-up, so producers that never stop cannot starve I/O.
    private static let tasksPerWakeup = 4096

    private func drainTasks() {
        var budget = Self.tasksPerWakeup
        while budget > 0, let task = tasks.pop() {
            task()
            budget -= 1
        }
        if budget == 0 && lifecycle.load(ordering: .acquiring) == Lifecycle.running.rawValue {
            uv_async_send(wakeup)  // more may be queued: come back after this turn's I/O
        }
        if lifecycle.load(ordering: .acquiring) == Lifecycle.shuttingDown.rawValue {
            closeAllHandles()
            uv_idle_start(reaper) { handle in
                Unmanaged<UVEventLoop>.fromOpaque(handle!.pointee.data).takeUnretainedValue().closeAllHandles()
            }
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

    /// Closes every handle on the loop and blocks until the loop thread has finished. Never call
    /// on any loop's thread: use `shutdown()` from async code, `shutdown(then:)` from a loop.
    public func syncShutdown() {
        Self.preconditionNotOnLoopThread("syncShutdown of event loop \(name)")
        let done = DispatchSemaphore(value: 0)
        shutdown { done.signal() }
        done.wait()
    }

    /// Closes every handle on the loop and returns once the loop thread has finished.
    public func shutdown() async {
        await withCheckedContinuation { continuation in shutdown { continuation.resume() } }
    }

    /// Starts shutting the loop down and returns at once; `done` runs once the loop thread has
    /// finished its work (on that thread, or right here if it already has). Any thread.
    public func shutdown(then done: @escaping @Sendable () -> Void) {
        let finished = completion.withLock { state in
            if !state.finished { state.waiters.append(done) }
            return state.finished
        }
        if finished { return done() }
        if lifecycle.compareExchange(
            expected: Lifecycle.running.rawValue, desired: Lifecycle.shuttingDown.rawValue,
            ordering: .acquiringAndReleasing
        ).exchanged {
            uv_async_send(wakeup)
        }
    }

    /// True once the loop thread has finished; work submitted from then on never runs.
    public var isShutDown: Bool {
        lifecycle.load(ordering: .acquiring) == Lifecycle.refusing.rawValue
    }

    /// The loop's epoll (or kqueue) descriptor, for diagnostics.
    public var backendFileDescriptor: Int32 { uv_backend_fd(uvLoop) }

    /// Loop time in milliseconds, as libuv caches it for the current iteration.
    public var now: UInt64 {
        preconditionInEventLoop()
        return uv_now(uvLoop)
    }

    /// The open handles on this loop, excluding the loop's own. Handles already closing
    /// are not counted: libuv frees them by the end of the current iteration.
    /// A diagnostics and leak-testing aid: must be called on the loop.
    public func liveHandleCount() -> Int {
        preconditionInEventLoop()
        // The loop's own handles (wake-up, reaper) carry the loop itself as their data.
        var walk = (loop: Unmanaged.passUnretained(self).toOpaque(), count: 0)
        uv_walk(
            uvLoop,
            { handle, arg in
                let walk = arg!.assumingMemoryBound(to: (loop: UnsafeMutableRawPointer, count: Int).self)
                if uv_is_closing(handle) == 0 && handle!.pointee.data != walk.pointee.loop {
                    walk.pointee.count += 1
                }
            }, &walk)
        return walk.count
    }
}

/// A fixed set of loops; servers listen on all of them, clients pick one with `next()`.
public final class UVEventLoopGroup: Sendable {
    public let loops: [UVEventLoop]
    private let cursor = Atomic<Int>(0)

    public init(numberOfLoops: Int = UVEventLoopGroup.defaultLoopCount, namePrefix: String = "motan-loop") {
        precondition(numberOfLoops > 0)
        loops = (0..<numberOfLoops).map { UVEventLoop(name: "\(namePrefix)-\($0)") }
    }

    /// One loop per online CPU core.
    public static var defaultLoopCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    public func next() -> UVEventLoop {
        let index = cursor.add(1, ordering: .relaxed).oldValue
        return loops[index % loops.count]
    }

    /// Shuts every loop down at once and blocks until all have finished. Never call on any
    /// loop's thread: use `shutdown()` from async code.
    public func syncShutdown() {
        UVEventLoop.preconditionNotOnLoopThread("UVEventLoopGroup.syncShutdown")
        let done = DispatchSemaphore(value: 0)
        for loop in loops { loop.shutdown { done.signal() } }
        for _ in loops { done.wait() }
    }

    /// Shuts every loop down at once and returns when all have finished.
    public func shutdown() async {
        await withCheckedContinuation { continuation in shutdown { continuation.resume() } }
    }

    /// Starts shutting every loop down; `done` runs once, when the last has finished. Any thread.
    public func shutdown(then done: @escaping @Sendable () -> Void) {
        let countdown = Countdown(loops.count, then: done)
        for loop in loops { loop.shutdown { countdown.tick() } }
    }
}

/// Runs `done` once, when the last of `count` parts has ticked (at once for none).
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    private let done: @Sendable () -> Void

    init(_ count: Int, then done: @escaping @Sendable () -> Void) {
        remaining = Atomic(count)
        self.done = done
        if count == 0 { done() }
    }

    func tick() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { done() }
    }
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
