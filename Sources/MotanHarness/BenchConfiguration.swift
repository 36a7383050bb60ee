import MotanLoop

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Everything that can be wrong with a `motan bench` invocation or run, each with a message a
/// person can act on.
public enum BenchError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidTarget(String, reason: String)
    case noTarget
    case targetsWithEmbedded
    case invalidValue(option: String, value: String, reason: String)
    case conflictingOptions(String, String, reason: String)
    case faultNeedsEmbedded(String)
    case registryNotAvailable(String)
    case unreachable(target: String, reason: String)
    case embeddedServerFailed(String)
    case fileFailed(path: String, reason: String)
    case invalidReport(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidTarget(let text, let reason):
            return "invalid target '\(text)': \(reason) (expected host:port with a numeric IPv4/IPv6 address)"
        case .noTarget:
            return "no target: give host:port (one or more), --registry direct://host:port, or --embedded"
        case .targetsWithEmbedded:
            return "--embedded starts its own server: give no targets or --registry with it"
        case .invalidValue(let option, let value, let reason):
            return "invalid value '\(value)' for \(option): \(reason)"
        case .conflictingOptions(let a, let b, let reason):
            return "\(a) and \(b) cannot be used together: \(reason)"
        case .faultNeedsEmbedded(let option):
            return "\(option) needs --embedded: the drill can only break a server this process owns"
        case .registryNotAvailable(let url):
            return
                "registry discovery for '\(url)' is not available in this build; use direct://host:port[,host:port] or list targets"
        case .unreachable(let target, let reason):
            return "target \(target) is unreachable: \(reason)"
        case .embeddedServerFailed(let reason):
            return "embedded server failed: \(reason)"
        case .fileFailed(let path, let reason):
            return "cannot write \(path): \(reason)"
        case .invalidReport(let path, let reason):
            return "\(path) is not a motan bench --json report: \(reason)"
        }
    }
}

/// How requests are issued.
public enum BenchLoadShape: Sendable, Equatable {
    /// Each connection keeps `depth` requests in flight; a new one leaves as soon as one returns.
    case closedLoop(depth: Int)
    /// `requestsPerSecond` in total, on a fixed schedule; latency counts from each request's
    /// intended send time, so a stalled server cannot hide its stall (coordinated omission).
    case constantRate(requestsPerSecond: Double)
}

/// A fault injected into the embedded server during the run.
public enum BenchFault: Sendable, Equatable {
    /// Close the server (listener and connections); bind it again on the same port to heal.
    case kill(afterSeconds: Double, healAfterSeconds: Double)
    /// Stop the server's loop from reading or answering anything, like a stopped process; resume to heal.
    case pause(afterSeconds: Double, healAfterSeconds: Double)

    public var afterSeconds: Double {
        switch self {
        case .kill(let after, _), .pause(let after, _): return after
        }
    }
    public var healAfterSeconds: Double {
        switch self {
        case .kill(_, let heal), .pause(_, let heal): return heal
        }
    }
    public var name: String {
        switch self {
        case .kill: return "kill"
        case .pause: return "pause"
        }
    }
}

/// A validated `motan bench` run.
public struct BenchConfiguration: Sendable {
    /// Empty with `embedded`: the embedded server's address is used.
    public var targets: [TCPAddress]
    public var embedded: Bool
    /// Per target.
    public var connections: Int
    public var shape: BenchLoadShape
    public var durationSeconds: Double
    public var warmupSeconds: Double
    /// Bytes of the string argument each request carries.
    public var payloadBytes: Int
    public var service: String
    public var method: String
    public var group: String
    public var gzip: Bool
    public var timeoutMilliseconds: Int
    public var loops: Int
    public var fault: BenchFault?
    /// Weighted failures that make a target unavailable, as the transport counts them.
    public var failureThreshold: Int
    /// How often an unavailable target is probed with a heartbeat.
    public var probeIntervalMilliseconds: Int
    public var reconnectDelayMilliseconds: Int

    public static let defaultService = "com.weibo.motan.demo.service.MotanDemoService"
    public static let defaultMethod = "echo"
    public static let defaultGroup = "motan-demo-rpc"
    /// Requests one connection may have in flight in constant-rate mode (fewer with very many
    /// connections); later ones wait their turn, and their wait counts in their latency.
    public static let rateModeInFlightPerConnection = 1024

    public init(
        targets: [TCPAddress] = [], embedded: Bool = false, connections: Int = 16,
        shape: BenchLoadShape = .closedLoop(depth: 1), durationSeconds: Double = 10, warmupSeconds: Double = 1,
        payloadBytes: Int = 64, service: String = BenchConfiguration.defaultService,
        method: String = BenchConfiguration.defaultMethod, group: String = BenchConfiguration.defaultGroup,
        gzip: Bool = false, timeoutMilliseconds: Int = 1000, loops: Int = 1, fault: BenchFault? = nil,
        failureThreshold: Int = 10, probeIntervalMilliseconds: Int = 100, reconnectDelayMilliseconds: Int = 100
    ) {
        self.targets = targets
        self.embedded = embedded
        self.connections = connections
        self.shape = shape
        self.durationSeconds = durationSeconds
        self.warmupSeconds = warmupSeconds
        self.payloadBytes = payloadBytes
        self.service = service
        self.method = method
        self.group = group
        self.gzip = gzip
        self.timeoutMilliseconds = timeoutMilliseconds
        self.loops = loops
        self.fault = fault
        self.failureThreshold = failureThreshold
        self.probeIntervalMilliseconds = probeIntervalMilliseconds
        self.reconnectDelayMilliseconds = reconnectDelayMilliseconds
    }

    /// Requests in flight per connection at most. At a constant rate the table shrinks with many
    /// connections, so memory stays bounded whatever the target does.
    var slotsPerConnection: Int {
        switch shape {
        case .closedLoop(let depth): return depth
        case .constantRate:
            let total = max(1, connections * max(1, targets.count))
            return max(64, min(Self.rateModeInFlightPerConnection, Self.maxInFlight / total))
        }
    }

    /// Bound on connections × depth × targets: each slot is a few dozen bytes, and a load this
    /// deep measures queueing, not the server.
    public static let maxInFlight = 1 << 20

    /// Builds a configuration from command-line values as typed, rejecting every bad or
    /// contradictory combination with a message that names the option.
    public static func parse(_ options: BenchOptions) throws(BenchError) -> BenchConfiguration {
        var targets: [TCPAddress] = []
        for text in options.targets { targets.append(try parseTarget(text)) }
        if let registry = options.registry {
            targets.append(contentsOf: try parseRegistry(registry))
        }
        if options.embedded && !targets.isEmpty { throw .targetsWithEmbedded }
        if !options.embedded && targets.isEmpty { throw .noTarget }

        let duration = try parseSeconds(options.duration, option: "--duration")
        guard duration > 0 else {
            throw .invalidValue(option: "--duration", value: options.duration, reason: "must be greater than zero")
        }
        let warmup = try parseSeconds(options.warmup, option: "--warmup")
        guard options.connections >= 1, options.connections <= 10_000 else {
            throw .invalidValue(
                option: "--connections", value: String(options.connections), reason: "must be 1...10000")
        }
        guard options.loops >= 1, options.loops <= 256 else {
            throw .invalidValue(option: "--loops", value: String(options.loops), reason: "must be 1...256")
        }
        guard options.payload >= 0, options.payload <= 8 << 20 else {
            throw .invalidValue(
                option: "--payload", value: String(options.payload), reason: "must be 0...8388608 bytes")
        }
        let timeout = try parseSeconds(options.timeout, option: "--timeout")
        guard timeout >= 0.001, timeout <= 3600 else {
            throw .invalidValue(option: "--timeout", value: options.timeout, reason: "must be 1 ms...1 h")
        }
        for (name, value) in [("--service", options.service), ("--method", options.method), ("--group", options.group)]
        where value.isEmpty || value.contains("\n") {
            throw .invalidValue(option: name, value: value, reason: "must be non-empty text without line breaks")
        }

        let shape: BenchLoadShape
        if let rateText = options.rate {
            if let depth = options.depth {
                throw .conflictingOptions(
                    "--rate", "--depth \(depth)",
                    reason: "a constant rate sets when requests leave; depth sets how many wait in a closed loop")
            }
            guard let rate = Double(rateText), rate.isFinite, rate > 0, rate <= 10_000_000 else {
                throw .invalidValue(
                    option: "--rate", value: rateText, reason: "must be a number of requests/s, 0 < R ≤ 10000000")
            }
            shape = .constantRate(requestsPerSecond: rate)
        } else {
            let depth = options.depth ?? 1
            guard depth >= 1, depth <= 65_535 else {
                throw .invalidValue(option: "--depth", value: String(depth), reason: "must be 1...65535")
            }
            shape = .closedLoop(depth: depth)
            let inFlight = depth * options.connections * max(1, targets.count)
            guard inFlight <= maxInFlight else {
                throw .invalidValue(
                    option: "--depth", value: String(depth),
                    reason: "connections × depth × targets = \(inFlight) requests in flight; at most \(maxInFlight)")
            }
        }

        var fault: BenchFault?
        let heal = try parseSeconds(options.healAfter ?? "2", option: "--heal-after")
        if let kill = options.killAfter {
            if options.pauseAfter != nil {
                throw .conflictingOptions("--kill-after", "--pause-after", reason: "one fault per run")
            }
            fault = .kill(afterSeconds: try parseSeconds(kill, option: "--kill-after"), healAfterSeconds: heal)
        } else if let pause = options.pauseAfter {
            fault = .pause(afterSeconds: try parseSeconds(pause, option: "--pause-after"), healAfterSeconds: heal)
        } else if options.healAfter != nil {
            throw .invalidValue(
                option: "--heal-after", value: options.healAfter!,
                reason: "only means something with --kill-after or --pause-after")
        }
        if let fault, !options.embedded {
            throw .faultNeedsEmbedded(fault.name == "kill" ? "--kill-after" : "--pause-after")
        }

        return BenchConfiguration(
            targets: targets, embedded: options.embedded, connections: options.connections, shape: shape,
            durationSeconds: duration, warmupSeconds: warmup, payloadBytes: options.payload, service: options.service,
            method: options.method, group: options.group, gzip: options.gzip,
            timeoutMilliseconds: Int((timeout * 1000).rounded(.up)), loops: options.loops, fault: fault)
    }

    /// `host:port` or `[v6]:port` with a numeric address (or `localhost`): names are not resolved,
    /// so a typo fails here instead of as a slow connect error.
    public static func parseTarget(_ text: String) throws(BenchError) -> TCPAddress {
        let address: TCPAddress
        do {
            address = try TCPAddress(parsing: text)
        } catch {
            throw .invalidTarget(text, reason: "not host:port with a port 0...65535")
        }
        guard address.port > 0 else { throw .invalidTarget(text, reason: "port 0 cannot be connected to") }
        var v4 = in_addr()
        var v6 = in6_addr()
        let numeric =
            address.isIPv6 ? inet_pton(AF_INET6, address.host, &v6) == 1 : inet_pton(AF_INET, address.host, &v4) == 1
        guard numeric else {
            throw .invalidTarget(text, reason: "'\(address.host)' is not a numeric address")
        }
        return address
    }

    /// `direct://h:p[,h:p]` is a target list; other registries need the discovery layer.
    public static func parseRegistry(_ url: String) throws(BenchError) -> [TCPAddress] {
        let prefix = "direct://"
        guard url.hasPrefix(prefix) else {
            guard url.contains("://") else {
                throw .invalidValue(
                    option: "--registry", value: url, reason: "expected a URL such as direct://127.0.0.1:8002")
            }
            throw .registryNotAvailable(url)
        }
        var rest = Substring(url.dropFirst(prefix.count))
        if let query = rest.firstIndex(where: { $0 == "?" || $0 == "/" }) { rest = rest[..<query] }
        let parts = rest.split(separator: ",", omittingEmptySubsequences: true)
        guard !parts.isEmpty else {
            throw .invalidValue(option: "--registry", value: url, reason: "direct:// needs at least one host:port")
        }
        var targets: [TCPAddress] = []
        for part in parts { targets.append(try parseTarget(String(part))) }
        return targets
    }

    /// Seconds as `2`, `1.5`, `1.5s`, `250ms` or `1m`.
    public static func parseSeconds(_ text: String, option: String) throws(BenchError) -> Double {
        var number = Substring(text)
        var scale = 1.0
        if number.hasSuffix("ms") {
            number = number.dropLast(2)
            scale = 0.001
        } else if number.hasSuffix("s") {
            number = number.dropLast()
        } else if number.hasSuffix("m") {
            number = number.dropLast()
            scale = 60
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale <= 86_400 else {
            throw .invalidValue(
                option: option, value: text, reason: "expected seconds, e.g. 5, 1.5s, 250ms, 1m (≤ 1 day)")
        }
        return value * scale
    }
}

/// The options of `motan bench` as typed, before validation.
public struct BenchOptions: Sendable {
    public var targets: [String] = []
    public var registry: String?
    public var embedded = false
    public var connections = 16
    public var depth: Int?
    public var rate: String?
    public var duration = "10"
    public var warmup = "1"
    public var payload = 64
    public var service = BenchConfiguration.defaultService
    public var method = BenchConfiguration.defaultMethod
    public var group = BenchConfiguration.defaultGroup
    public var gzip = false
    public var timeout = "1"
    public var loops = 1
    public var killAfter: String?
    public var pauseAfter: String?
    public var healAfter: String?

    public init() {}
}
