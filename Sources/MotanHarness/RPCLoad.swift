import Dispatch
import Histogram
import MotanCodec
import MotanLoop
import MotanTransport

/// What a run of RPC calls measured.
public struct RPCLoadResult: Sendable, CustomStringConvertible {
    public var succeeded: Int
    public var failed: Int
    public var elapsedNanoseconds: UInt64
    public var histogram: Histogram<UInt64>
    /// Why the run could not start (its endpoint's loop has shut down); nil when it ran.
    public var error: LoopError?

    public var callsPerSecond: Double {
        elapsedNanoseconds == 0 ? 0 : Double(succeeded + failed) * 1e9 / Double(elapsedNanoseconds)
    }

    public var description: String {
        let us = { (ns: UInt64) in String(Double(ns / 100) / 10) + " µs" }
        return "\(succeeded) ok, \(failed) failed in \(elapsedNanoseconds / 1_000_000) ms: "
            + "\(Int(callsPerSecond)) calls/s, p50 \(us(histogram.valueAtPercentile(50))), "
            + "p99 \(us(histogram.valueAtPercentile(99))), p99.9 \(us(histogram.valueAtPercentile(99.9)))"
    }
}

/// Drives calls through a `ClientEndpoint` on its own loop: `concurrency` chains, each issuing its
/// next call from the previous call's completion, until `calls` are done or the deadline passes.
public enum RPCLoad {
    public static func run(
        endpoint: ClientEndpoint, service: String, method: String, arguments: [SimpleValue],
        calls: Int, concurrency: Int = 1, timeLimit: Duration = .seconds(30)
    ) async -> RPCLoadResult {
        let loop = endpoint.loop
        let started = DispatchTime.now().uptimeNanoseconds
        let deadline = started + timeLimit.roundedUpMilliseconds * 1_000_000
        return await withCheckedContinuation { continuation in
            let accepted = loop.execute {
                let run = Run(
                    endpoint: endpoint, service: service, method: method, arguments: arguments,
                    quota: calls, deadline: deadline, started: started
                ) { continuation.resume(returning: $0) }
                for _ in 0..<Swift.max(1, Swift.min(concurrency, calls)) { run.next() }
            }
            if !accepted {
                continuation.resume(
                    returning: RPCLoadResult(
                        succeeded: 0, failed: 0, elapsedNanoseconds: 0,
                        histogram: Histogram(
                            highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three),
                        error: .loopShutDown))
            }
        }
    }

    /// Loop-thread state of one run.
    private final class Run {
        let endpoint: ClientEndpoint
        let service: String
        let method: String
        let arguments: [SimpleValue]
        let quota: Int
        let deadline: UInt64
        let started: UInt64
        let done: (RPCLoadResult) -> Void
        var issued = 0
        var inFlight = 0
        var succeeded = 0
        var failed = 0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

        init(
            endpoint: ClientEndpoint, service: String, method: String, arguments: [SimpleValue], quota: Int,
            deadline: UInt64, started: UInt64, done: @escaping (RPCLoadResult) -> Void
        ) {
            self.endpoint = endpoint
            self.service = service
            self.method = method
            self.arguments = arguments
            self.quota = quota
            self.deadline = deadline
            self.started = started
            self.done = done
        }

        func next() {
            let sent = DispatchTime.now().uptimeNanoseconds
            guard issued < quota, sent < deadline else {
                if inFlight == 0 { finish(at: sent) }
                return
            }
            issued += 1
            inFlight += 1
            endpoint.call(service: service, method: method, arguments: arguments) { [self] result in
                let now = DispatchTime.now().uptimeNanoseconds
                inFlight -= 1
                switch result {
                case .success:
                    succeeded += 1
                    _ = histogram.record(now - sent)
                case .failure:
                    failed += 1
                }
                next()
            }
        }

        private func finish(at now: UInt64) {
            done(
                RPCLoadResult(
                    succeeded: succeeded, failed: failed, elapsedNanoseconds: now - started, histogram: histogram,
                    error: nil))
        }
    }
}
