import Histogram
import MotanLoop

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs one `motan bench`: connects, loads, injects the fault if asked, drains, and merges the
/// loops' histograms and tallies into a report. All waiting happens here, off the loops.
public struct BenchRunner: Sendable {
    public let configuration: BenchConfiguration
    public var label: String

    public init(configuration: BenchConfiguration, label: String = "motan bench") {
        self.configuration = configuration
        self.label = label
    }

    public func run(progress: (@Sendable (BenchProgress) -> Void)? = nil) async throws(BenchError) -> BenchResult {
        let configuration = self.configuration
        let server: BenchEmbeddedServer? =
            configuration.embedded
            ? try BenchEmbeddedServer(service: configuration.service, method: configuration.method) : nil
        let targets = server.map { [$0.address] } ?? configuration.targets
        let origin = benchNow()
        let healths = targets.map {
            BenchTargetHealth(address: $0, threshold: configuration.failureThreshold, origin: origin)
        }
        let group = UVEventLoopGroup(numberOfLoops: configuration.loops, namePrefix: "bench-client")
        let workers = group.loops.map { BenchWorker(loop: $0, configuration: configuration, healths: healths) }
        var position = 0
        for target in targets.indices {
            for _ in 0..<configuration.connections {
                let connection = workers[position % workers.count].addConnection(target: target)
                connection.globalIndex = position
                position += 1
            }
        }
        let shutdown = {
            for worker in workers { _ = worker.loop.tryRunSync { worker.closeAll() } }
            group.syncShutdown()
            server?.shutdown()
        }

        // Connect everything first, so a wrong address fails here and not as a run of errors.
        let connectTimeout = Duration.milliseconds(Int64(min(configuration.timeoutMilliseconds, 2000)).clamped(100))
        var failures: [Int: [String]] = [:]
        for worker in workers {
            let failed: [(Int, String)] = await withCheckedContinuation { continuation in
                let accepted = worker.loop.execute {
                    worker.connectAll(timeout: connectTimeout) { continuation.resume(returning: $0) }
                }
                if !accepted { continuation.resume(returning: []) }
            }
            for (target, reason) in failed { failures[target, default: []].append(reason) }
        }
        for (target, reasons) in failures.sorted(by: { $0.key < $1.key })
        where reasons.count == configuration.connections {
            shutdown()
            throw .unreachable(target: targets[target].description, reason: reasons[0])
        }

        let startAt = benchNow() + 2_000_000
        let measureFrom = startAt + UInt64(configuration.warmupSeconds * 1e9)
        let stopAt = measureFrom + UInt64(configuration.durationSeconds * 1e9)
        let done = AsyncStream<Void>.makeStream()
        for worker in workers {
            worker.loop.execute {
                worker.start(startAt: startAt, measureFrom: measureFrom, stopAt: stopAt) {
                    done.continuation.yield()
                }
            }
        }

        let faultTask: Task<Void, Never>? = configuration.fault.flatMap { fault in
            server.map { server in
                Task { await Self.inject(fault, into: server, health: healths[0], startAt: startAt, stopAt: stopAt) }
            }
        }

        // Progress once a second until the window closes.
        var lastAnswered = 0
        var lastTime = startAt
        var cpuAtMeasure: (time: UInt64, cpu: UInt64)?
        var cpuAtStop: (time: UInt64, cpu: UInt64)?
        while benchNow() < stopAt {
            let now = benchNow()
            // Whole seconds of warm-up, then whole seconds of the window: never a line at the
            // instant the window opens, when it has nothing to show yet.
            var nextSecond = startAt + ((now - min(now, startAt)) / 1_000_000_000 + 1) * 1_000_000_000
            if nextSecond + 100_000_000 > measureFrom {
                nextSecond = measureFrom + ((now - min(now, measureFrom)) / 1_000_000_000 + 1) * 1_000_000_000
            }
            var wake = min(nextSecond, stopAt)
            if cpuAtMeasure == nil { wake = min(wake, measureFrom) }
            await Self.sleep(until: wake)
            if cpuAtMeasure == nil && benchNow() >= measureFrom { cpuAtMeasure = (benchNow(), processCPUNanoseconds()) }
            if benchNow() >= stopAt { cpuAtStop = (benchNow(), processCPUNanoseconds()) }
            guard let progress, wake == nextSecond, benchNow() < stopAt else { continue }
            let snapshot = await Self.progress(
                workers: workers, healths: healths, startAt: startAt, measureFrom: measureFrom,
                lastAnswered: lastAnswered, lastTime: lastTime)
            lastAnswered = snapshot.answered
            lastTime = benchNow()
            progress(snapshot)
        }

        var finished = 0
        for await _ in done.stream {
            finished += 1
            if finished == workers.count { break }
        }
        await faultTask?.value

        var tally = BenchTally()
        var histogram = Histogram<UInt64>(
            highestTrackableValue: workers[0].histogram.highestTrackableValue, numberOfSignificantValueDigits: .three)
        for worker in workers {
            if let (part, partHistogram) = worker.loop.tryRunSync({ (worker.tally, worker.histogram) }) {
                tally.add(part)
                histogram.add(partHistogram)
            }
        }
        shutdown()

        let events = healths.flatMap(\.events).sorted { $0.atSeconds < $1.atSeconds }
        let window = configuration.durationSeconds
        var report = BenchReport(
            label: label, mode: "closed-loop", targets: targets.map(\.description), embedded: configuration.embedded,
            connectionsPerTarget: configuration.connections, depth: nil, rate: nil, loops: configuration.loops,
            payloadBytes: configuration.payloadBytes, gzip: configuration.gzip, service: configuration.service,
            method: configuration.method, durationSeconds: window, warmupSeconds: configuration.warmupSeconds,
            timeoutMilliseconds: configuration.timeoutMilliseconds, requests: tally.requests,
            succeeded: tally.succeeded,
            errors: .init(
                timeout: tally.timeout, unavailable: tally.unavailable, serverError: tally.serverError,
                connection: tally.connection),
            intendedRequests: nil, lateResponses: tally.lateResponses, connectFailures: tally.connectFailures,
            requestsPerSecond: Double(tally.requests) / window, succeededPerSecond: Double(tally.succeeded) / window,
            latencyMicroseconds: BenchReport.latency(of: histogram), percentileCurve: BenchReport.curve(of: histogram),
            events: events, fault: nil, processCPUPercent: nil)
        switch configuration.shape {
        case .closedLoop(let depth):
            report.depth = depth
        case .constantRate(let rate):
            report.mode = "constant-rate"
            report.rate = rate
            report.intendedRequests = tally.intended
        }
        if let start = cpuAtMeasure, let end = cpuAtStop, end.time > start.time {
            report.processCPUPercent = Double(end.cpu - start.cpu) * 100 / Double(end.time - start.time)
        }
        if let fault = configuration.fault {
            report.fault = Self.faultReport(fault, events: events)
        }
        return BenchResult(report: report, histogram: histogram)
    }

    private static func progress(
        workers: [BenchWorker], healths: [BenchTargetHealth], startAt: UInt64, measureFrom: UInt64,
        lastAnswered: Int, lastTime: UInt64
    ) async -> BenchProgress {
        var answered = 0
        var requests = 0
        var succeeded = 0
        var errors = 0
        var histogram: Histogram<UInt64>?
        for worker in workers {
            requests += worker.publishedRequests.load(ordering: .relaxed)
            succeeded += worker.publishedSucceeded.load(ordering: .relaxed)
            errors += worker.publishedErrors.load(ordering: .relaxed)
            answered += worker.publishedAnswered.load(ordering: .relaxed)
            if let part = try? await worker.loop.submit({ worker.histogram }) {
                if histogram == nil { histogram = part } else { histogram!.add(part) }
            }
        }
        let now = benchNow()
        let interval = Double(now - min(now, lastTime)) / 1e9
        let percentile = { (p: Double) in histogram.map { Double($0.valueAtPercentile(p)) / 1000 } ?? 0 }
        return BenchProgress(
            elapsedSeconds: Double(now - min(now, startAt)) / 1e9, warmingUp: now < measureFrom, requests: requests,
            succeeded: succeeded, errors: errors,
            requestsPerSecond: interval > 0 ? Double(answered - lastAnswered) / interval : 0,
            p50Microseconds: percentile(50), p99Microseconds: percentile(99),
            unavailableTargets: healths.filter { !$0.isAvailable }.count, answered: answered)
    }

    /// Breaks the embedded server at `after` seconds into the load and heals it `heal` seconds later
    /// (at the latest when the window closes, so the drill always ends healed).
    private static func inject(
        _ fault: BenchFault, into server: BenchEmbeddedServer, health: BenchTargetHealth, startAt: UInt64,
        stopAt: UInt64
    ) async {
        let breakAt = startAt + UInt64(fault.afterSeconds * 1e9)
        guard breakAt < stopAt else { return }
        await sleep(until: breakAt)
        // Each event is stamped before the action: its effects must never appear to precede it.
        let brokeAt = benchNow()
        switch fault {
        case .kill:
            health.append(.serverKilled, at: brokeAt, detail: "listener and connections closed")
            server.kill()
        case .pause:
            health.append(.serverPaused, at: brokeAt, detail: "server loop stopped reading and answering")
            server.pause()
        }
        await sleep(until: min(breakAt + UInt64(fault.healAfterSeconds * 1e9), stopAt))
        let healedAt = benchNow()
        switch fault {
        case .kill:
            do {
                try server.restart()
                health.append(.serverRestarted, at: healedAt, detail: "listening again on the same port")
            } catch {
                health.append(.serverRestarted, at: healedAt, detail: "restart failed: \(error)")
            }
        case .pause:
            health.append(.serverResumed, at: healedAt, detail: "server loop running again")
            server.resume()
        }
    }

    private static func sleep(until deadline: UInt64) async {
        let now = benchNow()
        if deadline > now { try? await Task.sleep(for: .nanoseconds(Int64(deadline - now))) }
    }

    static func faultReport(_ fault: BenchFault, events: [BenchEvent]) -> BenchReport.Fault? {
        let injected: BenchEvent.Kind = fault.name == "kill" ? .serverKilled : .serverPaused
        let healed: BenchEvent.Kind = fault.name == "kill" ? .serverRestarted : .serverResumed
        guard let start = events.first(where: { $0.kind == injected }) else { return nil }
        var report = BenchReport.Fault(kind: fault.name, atSeconds: start.atSeconds)
        let heal = events.first { $0.kind == healed && $0.atSeconds >= start.atSeconds }
        report.healedAtSeconds = heal?.atSeconds
        if let down = events.first(where: { $0.kind == .unavailable && $0.atSeconds >= start.atSeconds }) {
            let first = max(down.firstFailureAtSeconds ?? down.atSeconds, start.atSeconds)
            report.detectionMilliseconds = (down.atSeconds - first) * 1000
            report.faultToUnavailableMilliseconds = (down.atSeconds - start.atSeconds) * 1000
        }
        if let heal, let up = events.first(where: { $0.kind == .available && $0.atSeconds >= heal.atSeconds }) {
            report.recoveryMilliseconds = (up.atSeconds - heal.atSeconds) * 1000
        }
        return report
    }
}

extension BenchReport.Fault {
    init(kind: String, atSeconds: Double) {
        self.init(
            kind: kind, atSeconds: atSeconds, healedAtSeconds: nil, detectionMilliseconds: nil,
            faultToUnavailableMilliseconds: nil, recoveryMilliseconds: nil)
    }
}

/// User plus system CPU time of the whole process (client loops, and the embedded server if any).
func processCPUNanoseconds() -> UInt64 {
    var usage = rusage()
    #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
        getrusage(RUSAGE_SELF, &usage)
    #endif
    let micros = { (t: timeval) in UInt64(t.tv_sec) * 1_000_000 + UInt64(t.tv_usec) }
    return (micros(usage.ru_utime) + micros(usage.ru_stime)) * 1000
}

extension Int64 {
    fileprivate func clamped(_ minimum: Int64) -> Int64 { Swift.max(self, minimum) }
}

extension BenchWorker {
    /// Opens every connection of this loop; `completion` gets (target, reason) for each that failed.
    func connectAll(timeout: Duration, completion: @escaping ([(Int, String)]) -> Void) {
        var remaining = connections.count
        var failed: [(Int, String)] = []
        guard remaining > 0 else { return completion([]) }
        for connection in connections {
            connection.connect(timeout: timeout) { result in
                if case .failure(let error) = result { failed.append((connection.targetIndex, "\(error)")) }
                remaining -= 1
                if remaining == 0 { completion(failed) }
            }
        }
    }
}
