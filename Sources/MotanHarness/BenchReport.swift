import Foundation
import Histogram

/// Everything a run found, as `--json` writes it.
public struct BenchReport: Sendable, Codable {
    public struct ErrorCounts: Sendable, Codable, Equatable {
        public var timeout: Int
        public var unavailable: Int
        public var serverError: Int
        public var connection: Int

        public var total: Int { timeout + unavailable + serverError + connection }
    }

    public struct Latency: Sendable, Codable, Equatable {
        public var min: Double
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var p9999: Double
        public var max: Double
    }

    public struct CurvePoint: Sendable, Codable, Equatable {
        /// 0...100.
        public var percentile: Double
        public var latencyMicroseconds: Double

        public init(percentile: Double, latencyMicroseconds: Double) {
            self.percentile = percentile
            self.latencyMicroseconds = latencyMicroseconds
        }
    }

    public struct Fault: Sendable, Codable, Equatable {
        public var kind: String
        public var atSeconds: Double
        public var healedAtSeconds: Double?
        /// First failure of the run that tripped the target → target unavailable.
        public var detectionMilliseconds: Double?
        /// Fault injected → target unavailable.
        public var faultToUnavailableMilliseconds: Double?
        /// Fault healed → target available again.
        public var recoveryMilliseconds: Double?
    }

    public var label: String
    /// "closed-loop" or "constant-rate".
    public var mode: String
    public var targets: [String]
    public var embedded: Bool
    public var connectionsPerTarget: Int
    public var depth: Int?
    public var rate: Double?
    public var loops: Int
    public var payloadBytes: Int
    public var gzip: Bool
    public var service: String
    public var method: String
    public var durationSeconds: Double
    public var warmupSeconds: Double
    public var timeoutMilliseconds: Int

    public var requests: Int
    public var succeeded: Int
    public var errors: ErrorCounts
    /// Constant rate: what the schedule called for in the window (`requests` may fall short when
    /// every slot was busy at the end).
    public var intendedRequests: Int?
    public var lateResponses: Int
    public var connectFailures: Int
    /// Requests ended in the window (any outcome) per second.
    public var requestsPerSecond: Double
    public var succeededPerSecond: Double
    /// Of succeeded requests; from the intended send time in constant-rate mode.
    public var latencyMicroseconds: Latency
    public var percentileCurve: [CurvePoint]
    /// Availability changes and injected faults, seconds since the run began.
    public var events: [BenchEvent]
    public var fault: Fault?
    /// CPU the whole process used over the window, in % of one core: the client loops, plus the
    /// server with `--embedded`. Divided by the request rate it is the harness's cost per request.
    public var processCPUPercent: Double?

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func load(path: String) throws(BenchError) -> BenchReport {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .invalidReport(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(BenchReport.self, from: data)
        } catch {
            throw .invalidReport(path: path, reason: "\(error)")
        }
    }

    static func latency(of histogram: Histogram<UInt64>) -> Latency {
        guard histogram.totalCount > 0 else {
            return Latency(min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, p9999: 0, max: 0)
        }
        let us = { (ns: UInt64) in Double(ns) / 1000 }
        return Latency(
            min: us(histogram.min), mean: histogram.mean / 1000, p50: us(histogram.valueAtPercentile(50)),
            p90: us(histogram.valueAtPercentile(90)), p99: us(histogram.valueAtPercentile(99)),
            p999: us(histogram.valueAtPercentile(99.9)), p9999: us(histogram.valueAtPercentile(99.99)),
            max: us(histogram.max))
    }

    static func curve(of histogram: Histogram<UInt64>) -> [CurvePoint] {
        guard histogram.totalCount > 0 else { return [] }
        return histogram.percentiles(ticksPerHalfDistance: 5).map {
            CurvePoint(percentile: $0.percentileLevelIteratedTo, latencyMicroseconds: Double($0.value) / 1000)
        }
    }

    /// The percentile distribution in HdrHistogram's text form (what `HistogramLogProcessor` and
    /// wrk2 print, and what HdrHistogram's plotter reads), values in microseconds.
    public static func hdrPercentileDistribution(_ histogram: Histogram<UInt64>) -> String {
        var text = ""
        histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000)
        return text
    }

    /// The human summary printed after a run.
    public var summary: String {
        var lines: [String] = []
        let window = String(format: "%.1f s", durationSeconds)
        switch mode {
        case "constant-rate":
            lines.append(
                "\(targets.joined(separator: ", ")): constant rate \(Self.number(rate ?? 0)) req/s over "
                    + "\(connectionsPerTarget) connection(s) per target, \(window) after \(warmupSeconds) s warm-up")
        default:
            lines.append(
                "\(targets.joined(separator: ", ")): closed loop, \(connectionsPerTarget) connection(s) per target × "
                    + "depth \(depth ?? 1), \(window) after \(warmupSeconds) s warm-up")
        }
        lines.append(
            "payload \(payloadBytes) B\(gzip ? " (gzip)" : ""), \(service).\(method), \(loops) client loop(s), "
                + "timeout \(timeoutMilliseconds) ms\(embedded ? ", embedded server" : "")")
        lines.append("")
        lines.append("  Latency (µs)    p50        p90        p99      p99.9     p99.99        max")
        let l = latencyMicroseconds
        lines.append(
            "              "
                + [l.p50, l.p90, l.p99, l.p999, l.p9999, l.max].map { Self.pad(Self.micro($0), 10) }.joined(
                    separator: " "))
        lines.append("")
        lines.append(
            "  \(requests) requests, \(succeeded) succeeded, \(errors.total) errors; "
                + "\(Self.number(requestsPerSecond)) req/s (\(Self.number(succeededPerSecond)) succeeded/s)")
        if let cpu = processCPUPercent, requestsPerSecond > 0 {
            lines.append(
                "  process CPU \(String(format: "%.1f", cpu))% of one core"
                    + (embedded ? " (client and embedded server)" : "")
                    + ", \(Self.number(cpu / 100 * 1e9 / requestsPerSecond)) ns per request")
        }
        if let intendedRequests {
            lines.append("  schedule called for \(intendedRequests) requests in the window; \(requests) were issued")
        }
        lines.append(
            "  errors: timeout \(errors.timeout), unavailable \(errors.unavailable), "
                + "server error \(errors.serverError), connection \(errors.connection)"
                + (lateResponses > 0 ? "; \(lateResponses) answers came after their timeout" : "")
                + (connectFailures > 0 ? "; \(connectFailures) connect attempts failed" : ""))
        if events.isEmpty {
            lines.append("  availability: every target stayed available")
        } else {
            lines.append("  events:")
            for event in events.prefix(40) {
                lines.append(
                    "    \(Self.pad(String(format: "%.3f s", event.atSeconds), 10))  \(event.target)  "
                        + "\(event.kind.rawValue)  \(event.detail)")
            }
            if events.count > 40 { lines.append("    … \(events.count - 40) more in --json") }
        }
        if let fault {
            var line = "  fault drill (\(fault.kind) at \(String(format: "%.3f", fault.atSeconds)) s): "
            line +=
                "detection \(fault.detectionMilliseconds.map { String(format: "%.1f ms", $0) } ?? "— (never unavailable)")"
            if let t = fault.faultToUnavailableMilliseconds { line += String(format: " (%.1f ms after the fault)", t) }
            line += ", recovery \(fault.recoveryMilliseconds.map { String(format: "%.1f ms", $0) } ?? "— (not seen)")"
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func micro(_ value: Double) -> String {
        value >= 100_000 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }

    static func number(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : String(format: "%.1f", value)
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}

/// A run's report plus its full histogram (for `--hdr`).
public struct BenchResult: Sendable {
    public var report: BenchReport
    public var histogram: Histogram<UInt64>
}

/// What the live display shows once a second.
public struct BenchProgress: Sendable {
    public var elapsedSeconds: Double
    public var warmingUp: Bool
    public var requests: Int
    public var succeeded: Int
    public var errors: Int
    /// Over the last interval.
    public var requestsPerSecond: Double
    public var p50Microseconds: Double
    public var p99Microseconds: Double
    public var unavailableTargets: Int
    /// Answers so far, warm-up included.
    public var answered: Int

    public var line: String {
        let rate = "\(BenchReport.number(requestsPerSecond)) req/s"
        let unavailable = unavailableTargets > 0 ? "  \(unavailableTargets) target(s) unavailable" : ""
        let time = "[\(String(format: "%5.1f", elapsedSeconds)) s]"
        if warmingUp { return "\(time) warm-up  \(rate)" + unavailable }
        return "\(time) \(requests) requests  \(rate)  errors \(errors)  "
            + "p50 \(BenchReport.micro(p50Microseconds)) µs  p99 \(BenchReport.micro(p99Microseconds)) µs" + unavailable
    }
}
