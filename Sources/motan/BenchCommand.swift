import ArgumentParser
import Foundation
import Logging
import MotanHarness
import MotanLoop
import MotanRegistry

/// `motan bench`: load and latency against Motan2 servers, or against an embedded one.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test Motan2 servers: closed loop or constant rate, HdrHistogram latency, fault drills.",
        discussion: """
            Examples:
              motan bench --embedded --duration 5
              motan bench 127.0.0.1:8002 --connections 16 --depth 16 --duration 10 --json run.json --plot run.svg
              motan bench 127.0.0.1:8002 --rate 20000 --duration 30
              motan bench --embedded --kill-after 2 --heal-after 1 --duration 6
              motan bench plot a.json b.json -o compare.svg
            """,
        subcommands: [BenchRunCommand.self, BenchPlotCommand.self],
        defaultSubcommand: BenchRunCommand.self)
}

struct BenchRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a load test (the default: `motan bench TARGET…` means `motan bench run TARGET…`).")

    @Argument(help: "Motan2 servers as host:port (numeric address); none with --embedded.")
    var targets: [String] = []

    @Option(
        help:
            "Targets from a registry: direct://h:p[,h:p], or the servers zookeeper:// or consul:// lists as available.")
    var registry: String?

    @Flag(help: "Start a Motan2 echo server in this process (own loop) and load it.")
    var embedded = false

    @Option(help: "Connections per target.")
    var connections: Int = 16

    @Option(help: "Closed loop: requests in flight per connection (default 1).")
    var depth: Int?

    @Option(help: "Constant rate: requests per second in total, latency corrected for coordinated omission.")
    var rate: String?

    @Option(help: "Measured time: 10, 1.5s, 500ms, 1m.")
    var duration: String = "10"

    @Option(help: "Load before measuring starts (not counted).")
    var warmup: String = "1"

    @Option(help: "Bytes of the string argument each request carries.")
    var payload: Int = 64

    @Option(help: "Service (M_p).")
    var service: String = BenchConfiguration.defaultService

    @Option(help: "Method (M_m).")
    var method: String = BenchConfiguration.defaultMethod

    @Option(help: "Group (M_g).")
    var group: String = BenchConfiguration.defaultGroup

    @Flag(help: "Send gzip-compressed request bodies.")
    var gzip = false

    @Option(help: "Per-request timeout: 1, 250ms, …")
    var timeout: String = "1"

    @Option(help: "Client event loops (threads).")
    var loops: Int = 1

    @Option(name: .customLong("kill-after"), help: "Fault drill (--embedded): close the server after this long.")
    var killAfter: String?

    @Option(name: .customLong("pause-after"), help: "Fault drill (--embedded): freeze the server after this long.")
    var pauseAfter: String?

    @Option(
        name: .customLong("heal-after"),
        help: "Fault drill: restart / resume the server this long after the fault (default 2).")
    var healAfter: String?

    @Option(help: "Write the full report as JSON.")
    var json: String?

    @Option(help: "Write the histogram's percentile distribution in HdrHistogram's text format (µs).")
    var hdr: String?

    @Option(help: "Draw latency by percentile as SVG.")
    var plot: String?

    @Option(help: "Name of this run in --json and plot legends.")
    var label: String?

    @Flag(help: "No progress display.")
    var quiet = false

    /// Registries whose server lists are read once, at the start, to become the targets.
    private var discoversTargets: Bool {
        guard let registry, let address = try? RegistryAddress(parsing: registry) else { return false }
        return address.scheme == "zookeeper" || address.scheme == "consul"
    }

    /// `discovered` replaces the targets and the registry (the servers a registry listed).
    func makeConfiguration(discovered: [String]? = nil) throws -> BenchConfiguration {
        var options = BenchOptions()
        options.targets = discovered ?? targets
        options.registry = discovered == nil ? registry : nil
        options.embedded = embedded
        options.connections = connections
        options.depth = depth
        options.rate = rate
        options.duration = duration
        options.warmup = warmup
        options.payload = payload
        options.service = service
        options.method = method
        options.group = group
        options.gzip = gzip
        options.timeout = timeout
        options.loops = loops
        options.killAfter = killAfter
        options.pauseAfter = pauseAfter
        options.healAfter = healAfter
        do {
            return try BenchConfiguration.parse(options)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        if discoversTargets {
            guard targets.isEmpty, !embedded else {
                throw ValidationError("--registry takes the place of targets and --embedded")
            }
            // The real list comes at run time; every other option is checked now.
            _ = try makeConfiguration(discovered: ["127.0.0.1:1"])
        } else {
            _ = try makeConfiguration()
        }
    }

    /// The available servers of the benchmarked service, from the registry, as host:port.
    private func discoverTargets() async throws -> [String] {
        installRegistryModules()
        let loops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "bench-registry")
        let made = try RegistryFactory.shared.makeRegistry(
            parsing: registry!, context: RegistryContext(loop: loops.loops[0]))
        let subscriber = MotanURL(
            host: "127.0.0.1", port: 0, path: service,
            parameters: ["group": group, "nodeType": "referer"])
        let servers: Result<[MotanURL], RegistryError>
        do {
            servers = .success(try await made.discover(subscriber))
        } catch {
            servers = .failure(error)
        }
        await made.close()
        await loops.shutdown()
        let found = try servers.get()
        guard !found.isEmpty else {
            throw CommandFailure(
                "\(registry!) lists no available server for \(service) in group \(subscriber.group): is the servers' heartbeat switch (feature.configserver.heartbeat) on?"
            )
        }
        return found.map { TCPAddress(host: $0.host, port: $0.port).description }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let configuration = try makeConfiguration(discovered: discoversTargets ? try await discoverTargets() : nil)
        let runner = BenchRunner(configuration: configuration, label: label ?? Self.defaultLabel(configuration))
        let display = BenchProgressDisplay(enabled: !quiet)
        let result: BenchResult
        do {
            result = try await runner.run { display.show($0) }
        } catch {
            display.end()
            BenchProgressDisplay.printError("motan bench: \(error)")
            throw ExitCode(1)
        }
        display.end()
        print(result.report.summary)
        do {
            if let json { try write(try result.report.jsonData(), to: json) }
            if let hdr { try write(Data(BenchReport.hdrPercentileDistribution(result.histogram).utf8), to: hdr) }
            if let plot {
                let svg = BenchPlot.svg([.init(label: result.report.label, points: result.report.percentileCurve)])
                try write(Data(svg.utf8), to: plot)
            }
        } catch {
            BenchProgressDisplay.printError("motan bench: \(error)")
            throw ExitCode(1)
        }
    }

    private func write(_ data: Data, to path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path))
        } catch {
            throw BenchError.fileFailed(path: path, reason: error.localizedDescription)
        }
    }

    static func defaultLabel(_ configuration: BenchConfiguration) -> String {
        let target =
            configuration.embedded ? "embedded" : configuration.targets.map(\.description).joined(separator: ",")
        switch configuration.shape {
        case .closedLoop(let depth): return "\(target) \(configuration.connections)x\(depth)"
        case .constantRate(let rate): return "\(target) \(Int(rate)) req/s"
        }
    }
}

struct BenchPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Overlay the latency-by-percentile curves of several `motan bench --json` reports in one SVG.")

    @Argument(help: "Reports written by motan bench --json.")
    var reports: [String]

    @Option(name: [.short, .customLong("output")], help: "SVG file to write.")
    var output: String

    @Option(help: "Plot title.")
    var title: String = "Latency by percentile"

    func validate() throws {
        guard !reports.isEmpty else { throw ValidationError("give at least one --json report") }
    }

    func run() throws {
        var series: [BenchPlot.Series] = []
        var seen: [String: Int] = [:]
        for path in reports {
            let report: BenchReport
            do {
                report = try BenchReport.load(path: path)
            } catch {
                throw ValidationError(error.description)
            }
            // Runs with the same label stay apart in the legend.
            let count = seen[report.label, default: 0]
            seen[report.label] = count + 1
            let label = count == 0 ? report.label : "\(report.label) (\(URL(fileURLWithPath: path).lastPathComponent))"
            series.append(.init(label: label, points: report.percentileCurve))
        }
        let svg = BenchPlot.svg(series, title: title)
        do {
            try Data(svg.utf8).write(to: URL(fileURLWithPath: output))
        } catch {
            throw ValidationError(BenchError.fileFailed(path: output, reason: error.localizedDescription).description)
        }
        print("wrote \(output): \(series.count) run(s)")
    }
}

/// The once-a-second line: rewritten in place on a terminal, one line per update otherwise.
final class BenchProgressDisplay: Sendable {
    let enabled: Bool
    let isTerminal: Bool

    init(enabled: Bool) {
        self.enabled = enabled
        isTerminal = isatty(STDERR_FILENO) == 1
    }

    func show(_ progress: BenchProgress) {
        guard enabled else { return }
        if isTerminal {
            Self.printError("\r\u{1B}[K" + progress.line, newline: false)
        } else {
            Self.printError(progress.line)
        }
    }

    func end() {
        if enabled && isTerminal { Self.printError("\r\u{1B}[K", newline: false) }
    }

    static func printError(_ text: String, newline: Bool = true) {
        let bytes = Array((newline ? text + "\n" : text).utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
