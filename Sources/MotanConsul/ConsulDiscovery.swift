import Logging
import MotanHTTP
import MotanLoop
import MotanRegistry

/// Watches one group's service (`motanrpc_<group>`) with blocking queries and tells each
/// subscriber the full list of its interface's instances whenever that list changes.
///
/// Index rules (consul-agent-api.md §3): the first query has no index and answers at once; each
/// later one sends the last index (never below 1); an index that went backwards resets to 0 (and
/// tells the registry the agent lost its state). Queries are rate limited by a token bucket
/// (burst 2), and errors back off exponentially. Loop thread only; no thread ever waits.
final class ConsulGroupWatch {
    struct Subscriber {
        var path: String
        var listener: RegistryListener
        var lastNotified: [MotanURL]?
    }

    struct Timing {
        var blockingWait: Duration
        var initialRetryDelay: Duration
        var maxRetryDelay: Duration
        var queriesPerSecond: Double
        var burst: Double
    }

    let group: String
    let serviceName: String
    private let loop: UVEventLoop
    private let api: ConsulAgentAPI
    private let timing: Timing
    private let logger: Logger
    private let agentReset: () -> Void

    private(set) var subscribers: [UInt64: Subscriber] = [:]
    private var index: UInt64 = 0
    /// After a failed query the next one does not block: the agent may have restarted with a lower
    /// index, and a blocking query sent with the old, higher one would wait out its whole wait time.
    private var resync = false
    private var instances: [MotanURL]?
    private var querying: LoopHTTPRequestHandle?
    private var stopped = false
    private var timer: LoopTimer?
    private var retryDelay: Duration
    private var tokens: Double
    private var lastRefill: UInt64
    /// Callers of `subscribe` waiting for the first answer (or first failure).
    private var firstAnswerWaiters: [() -> Void] = []

    init(
        group: String, loop: UVEventLoop, api: ConsulAgentAPI, timing: Timing, logger: Logger,
        agentReset: @escaping () -> Void
    ) {
        self.group = group
        serviceName = ConsulConventions.serviceName(group: group)
        self.loop = loop
        self.api = api
        self.timing = timing
        self.logger = logger
        self.agentReset = agentReset
        retryDelay = timing.initialRetryDelay
        tokens = timing.burst
        lastRefill = loop.now
    }

    /// Adds a subscriber; `ready` runs once it has been told the list (or the first query failed).
    func add(id: UInt64, path: String, listener: @escaping RegistryListener, ready: @escaping () -> Void) {
        subscribers[id] = Subscriber(path: path, listener: listener, lastNotified: nil)
        if instances != nil {
            notify()
            ready()
            return
        }
        firstAnswerWaiters.append(ready)
        if querying == nil && timer == nil { query() }
    }

    func remove(id: UInt64) {
        subscribers[id] = nil
        if subscribers.isEmpty { stop() }
    }

    func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
        // A blocking query would otherwise hold its connection for the rest of its wait.
        querying?.cancel()
        querying = nil
        releaseWaiters()
    }

    var isStopped: Bool { stopped }

    private func releaseWaiters() {
        let waiters = firstAnswerWaiters
        firstAnswerWaiters.removeAll()
        for waiter in waiters { waiter() }
    }

    /// Takes a token, or schedules the query for when one is due.
    private func query() {
        guard !stopped, querying == nil else { return }
        let now = loop.now
        tokens = min(timing.burst, tokens + Double(now - lastRefill) / 1000 * timing.queriesPerSecond)
        lastRefill = now
        guard tokens >= 1 else {
            let waitMs = UInt64(((1 - tokens) / timing.queriesPerSecond * 1000).rounded(.up))
            schedule(after: .milliseconds(Int64(max(1, waitMs))))
            return
        }
        tokens -= 1
        // The answer can come before `health` returns (a refused connect, say): then there is no
        // query in flight to remember.
        var answered = false
        let handle = api.health(service: serviceName, index: resync ? 0 : index, wait: timing.blockingWait) {
            [weak self] result in
            answered = true
            guard let self else { return }
            self.querying = nil
            guard !self.stopped else { return }
            switch result {
            case .success(let answer):
                self.retryDelay = self.timing.initialRetryDelay
                self.accept(answer.entries, index: answer.index)
                self.query()
            case .failure(let error):
                self.logger.warning(
                    "consul lookup of \(self.serviceName) failed: \(error); retrying in \(self.retryDelay)")
                self.schedule(after: self.retryDelay)
                self.retryDelay = min(self.retryDelay * 2, self.timing.maxRetryDelay)
                self.resync = true
                self.releaseWaiters()
            }
        }
        if !answered { querying = handle }
    }

    private func schedule(after delay: Duration) {
        timer?.cancel()
        timer = loop.scheduleTimer(after: delay) { [weak self] in
            self?.timer = nil
            self?.query()
        }
    }

    private func accept(_ entries: [ConsulHealthEntry], index newIndex: UInt64) {
        resync = false
        if newIndex < index {
            logger.info("consul index of \(serviceName) went back from \(index) to \(newIndex); starting over")
            index = 0
            agentReset()
        } else {
            index = max(1, newIndex)
        }
        instances = entries.compactMap { ConsulConventions.url(of: $0.Service, group: group) }
            .sorted { $0.description < $1.description }
        notify()
        releaseWaiters()
    }

    /// Each subscriber hears its interface's full list when it differs from what it heard last.
    private func notify() {
        guard let instances else { return }
        for (id, subscriber) in subscribers {
            let list = instances.filter { $0.path == subscriber.path }
            guard list != subscriber.lastNotified else { continue }
            subscribers[id]?.lastNotified = list
            subscriber.listener(list)
        }
    }
}
