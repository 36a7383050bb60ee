import Logging
import MotanLoop
import MotanRegistry

/// Keeps the agent's view of this process's instances in line with ours: registered, and their TTL
/// checks passing while available, failing while not. Passes every `passInterval` (below the TTL)
/// from one repeating loop timer; a state change is sent at once, not at the next tick. A failed
/// call is retried with backoff; an agent that has forgotten an instance (404 on its check, or a
/// restart seen by discovery) gets it registered again. Loop thread only.
final class ConsulHeartbeatManager {
    final class Instance {
        let url: MotanURL
        let id: String
        var state = ServiceState.unavailable
        var onAgent = false
        var syncing = false
        var needsSync = false
        /// Callers waiting for the next sync round to finish.
        var waiting: [(Result<Void, ConsulCallError>) -> Void] = []
        var retryTimer: LoopTimer?
        var retryDelay: Duration
        var removed = false

        init(url: MotanURL, retryDelay: Duration) {
            self.url = url
            id = ConsulConventions.serviceID(url)
            self.retryDelay = retryDelay
        }
    }

    struct Timing {
        var ttl: Duration
        var passInterval: Duration
        var initialRetryDelay: Duration
        var maxRetryDelay: Duration
    }

    let loop: UVEventLoop
    let api: ConsulAgentAPI
    let timing: Timing
    let logger: Logger
    private(set) var instances: [String: Instance] = [:]
    private var passTimer: LoopTimer?
    private var closed = false
    /// Passes sent (diagnostics and tests).
    private(set) var passesSent = 0

    init(loop: UVEventLoop, api: ConsulAgentAPI, timing: Timing, logger: Logger) {
        self.loop = loop
        self.api = api
        self.timing = timing
        self.logger = logger
    }

    /// Registers `url` (its check starts critical); `done` gets the first attempt's outcome.
    func register(_ url: MotanURL, _ done: @escaping (Result<Void, ConsulCallError>) -> Void) {
        let id = ConsulConventions.serviceID(url)
        let instance = instances[id] ?? Instance(url: url, retryDelay: timing.initialRetryDelay)
        instances[id] = instance
        instance.onAgent = false
        instance.state = .unavailable
        sync(instance, done)
    }

    func unregister(_ url: MotanURL, _ done: @escaping (Result<Void, ConsulCallError>) -> Void) {
        let id = ConsulConventions.serviceID(url)
        if let instance = instances.removeValue(forKey: id) { retire(instance) }
        updatePassTimer()
        api.deregister(serviceID: id, done)
    }

    /// Moves `url` (nil: every instance) to `state` and tells the agent now.
    func setState(
        _ state: ServiceState, of url: MotanURL?, _ done: @escaping (Result<Void, ConsulCallError>) -> Void
    ) throws(RegistryError) {
        let targets: [Instance]
        if let url {
            guard let instance = instances[ConsulConventions.serviceID(url)] else {
                throw .notRegistered(url.description)
            }
            targets = [instance]
        } else {
            targets = Array(instances.values)
        }
        for instance in targets { instance.state = state }
        updatePassTimer()
        guard !targets.isEmpty else { return done(.success(())) }
        var remaining = targets.count
        var firstError: ConsulCallError?
        for instance in targets {
            sync(instance) { result in
                if case .failure(let error) = result, firstError == nil { firstError = error }
                remaining -= 1
                if remaining == 0 { done(firstError.map { .failure($0) } ?? .success(())) }
            }
        }
    }

    /// The agent lost its state (a restart): register everything again, then restore each state.
    func agentForgotEverything() {
        guard !closed else { return }
        for instance in instances.values where instance.onAgent {
            logger.info("consul agent lost \(instance.id); registering it again")
            instance.onAgent = false
            sync(instance, nil)
        }
    }

    /// Stops passing and retrying; deregisters every instance. `done` runs once all answered.
    func close(_ done: @escaping () -> Void) {
        closed = true
        passTimer?.cancel()
        passTimer = nil
        let all = Array(instances.values)
        instances.removeAll()
        guard !all.isEmpty else { return done() }
        var remaining = all.count
        for instance in all {
            retire(instance)
            api.deregister(serviceID: instance.id) { [logger] result in
                if case .failure(let error) = result {
                    logger.warning("consul deregister of \(instance.id) failed: \(error)")
                }
                remaining -= 1
                if remaining == 0 { done() }
            }
        }
    }

    private func retire(_ instance: Instance) {
        instance.removed = true
        instance.retryTimer?.cancel()
        instance.retryTimer = nil
        let waiting = instance.waiting
        instance.waiting.removeAll()
        for waiter in waiting { waiter(.success(())) }
    }

    /// The timer runs only while something is available, at a fixed rate below the TTL.
    private func updatePassTimer() {
        let anyAvailable = !closed && instances.values.contains { $0.state == .available }
        if anyAvailable && passTimer == nil {
            passTimer = loop.scheduleRepeatingTimer(every: timing.passInterval) { [weak self] in self?.tick() }
        } else if !anyAvailable, let timer = passTimer {
            timer.cancel()
            passTimer = nil
        }
    }

    private func tick() {
        for instance in instances.values where instance.state == .available { sync(instance, nil) }
    }

    /// One round: register if the agent does not have the instance, then pass or fail its check.
    /// Rounds never overlap; a request during a round runs one more round after it.
    private func sync(_ instance: Instance, _ done: ((Result<Void, ConsulCallError>) -> Void)?) {
        if let done { instance.waiting.append(done) }
        guard !instance.removed, !closed else { return }
        if instance.syncing {
            instance.needsSync = true
            return
        }
        instance.retryTimer?.cancel()
        instance.retryTimer = nil
        instance.syncing = true
        instance.needsSync = false
        let waiting = instance.waiting
        instance.waiting.removeAll()
        let finish: (Result<Void, ConsulCallError>) -> Void = { [weak self] result in
            guard let self else { return }
            instance.syncing = false
            for waiter in waiting { waiter(result) }
            guard !instance.removed, !self.closed else { return }
            switch result {
            case .success:
                instance.retryDelay = self.timing.initialRetryDelay
                if instance.needsSync { self.sync(instance, nil) }
            case .failure(let error):
                self.scheduleRetry(instance, after: error)
            }
        }
        round(instance, mayRegisterAgain: true, finish)
    }

    /// Registers the instance if the agent does not have it, then passes or fails its check. A
    /// check the agent does not know (it restarted, or someone removed the service) makes the round
    /// register once more and try again, so the caller of a flip is not told of a failure that
    /// the round itself repaired.
    private func round(
        _ instance: Instance, mayRegisterAgain: Bool, _ finish: @escaping (Result<Void, ConsulCallError>) -> Void
    ) {
        guard instance.onAgent else {
            api.register(ConsulConventions.registration(instance.url, ttl: timing.ttl)) { [weak self] result in
                guard let self else { return }
                switch result {
                case .failure(let error):
                    finish(.failure(error))
                case .success:
                    instance.onAgent = true
                    // A new check starts critical: only an available instance needs a call now.
                    if instance.state == .available {
                        self.updateCheck(instance, mayRegisterAgain: false, finish)
                    } else {
                        finish(.success(()))
                    }
                }
            }
            return
        }
        updateCheck(instance, mayRegisterAgain: mayRegisterAgain, finish)
    }

    private func updateCheck(
        _ instance: Instance, mayRegisterAgain: Bool, _ finish: @escaping (Result<Void, ConsulCallError>) -> Void
    ) {
        let done: ConsulAgentAPI.Done = { [weak self] result in
            if case .failure(let error) = result, error.isNotFound {
                instance.onAgent = false
                if mayRegisterAgain, let self, !instance.removed, !self.closed {
                    self.logger.info("consul agent does not know \(instance.id); registering it again")
                    return self.round(instance, mayRegisterAgain: false, finish)
                }
            }
            finish(result)
        }
        if instance.state == .available {
            passesSent += 1
            api.passCheck(serviceID: instance.id, done)
        } else {
            api.failCheck(serviceID: instance.id, done)
        }
    }

    private func scheduleRetry(_ instance: Instance, after error: ConsulCallError) {
        // A forgotten instance is registered again at once, but only once in a row without backoff.
        let immediate = error.isNotFound && instance.retryDelay == timing.initialRetryDelay
        let delay = immediate ? .zero : instance.retryDelay
        if !error.isNotFound {
            logger.warning("consul update of \(instance.id) failed: \(error); retrying in \(delay)")
        }
        instance.retryDelay = min(instance.retryDelay * 2, timing.maxRetryDelay)
        instance.retryTimer = loop.scheduleTimer(after: delay) { [weak self] in
            instance.retryTimer = nil
            self?.sync(instance, nil)
        }
    }
}
