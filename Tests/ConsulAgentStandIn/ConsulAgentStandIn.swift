import Foundation
import MotanHTTP
import MotanLoop

/// A stand-in for the local Consul agent, for tests: the HTTP endpoints Motan's Consul registry
/// uses, with the agent's documented semantics (consul-agent-api.md §4). It listens on 127.0.0.1.
///
/// Implemented: `PUT /v1/agent/service/register`, `PUT /v1/agent/service/deregister/<id>`,
/// `PUT /v1/agent/check/{pass,warn,fail,update}/<check id>`, `GET /v1/health/service/<name>`
/// (`passing`, `tag`, blocking `index`/`wait`). Not implemented: KV, catalog, ACLs, sessions.
///
/// Test controls, outside `/v1` and never used by the registry: `PUT /_standin/expire/<check id>`,
/// `PUT /_standin/serf?status=passing|critical`, `PUT /_standin/restart` (forget everything, index
/// starts over), `PUT /_standin/fail?status=<code>&count=<n>`, `GET /_standin/counters`; and the
/// same as Swift methods, plus `stop()`/`start()` (agent unreachable) and `restart()`.
///
/// `DeregisterCriticalServiceAfter`: the real agent's minimum (1 minute) and reaper period (30 s)
/// are `Options.deregisterMinimum` and `Options.reaperPeriod`, so tests can shorten both.
/// Blocking queries get no jitter (the real agent adds up to wait/16), to keep tests deterministic.
public final class ConsulAgentStandIn: @unchecked Sendable {
    public struct Options: Sendable {
        public var port: Int
        public var initialIndex: UInt64
        public var defaultWait: Duration
        public var maxWait: Duration
        public var deregisterMinimum: Duration
        public var reaperPeriod: Duration
        /// 200 (documented) or 404 (some versions) for deregistering an unknown id.
        public var unknownDeregisterStatus: Int

        public init(
            port: Int = 0, initialIndex: UInt64 = 10, defaultWait: Duration = .seconds(300),
            maxWait: Duration = .seconds(600), deregisterMinimum: Duration = .seconds(60),
            reaperPeriod: Duration = .seconds(30), unknownDeregisterStatus: Int = 200
        ) {
            self.port = port
            self.initialIndex = initialIndex
            self.defaultWait = defaultWait
            self.maxWait = maxWait
            self.deregisterMinimum = deregisterMinimum
            self.reaperPeriod = reaperPeriod
            self.unknownDeregisterStatus = unknownDeregisterStatus
        }
    }

    public struct Counters: Sendable, Codable, Equatable {
        public var passes: [String: Int] = [:]
        public var registrations = 0
        public var deregistrations = 0
        public var expirations = 0
        /// Queries waiting right now.
        public var blockedQueries = 0
        public var healthQueries = 0
        public var requests = 0
    }

    /// Faults injected by tests, consumed one request at a time.
    struct Faults {
        var failStatus = 500
        var failCount = 0
        var dropCount = 0
        var latency: Duration = .zero
    }

    public let options: Options
    private let group: UVEventLoopGroup
    private let state: AgentState
    private var faults = Faults()
    private var server: LoopHTTPServer?
    public private(set) var port: Int

    public init(_ options: Options = Options()) throws(LoopError) {
        self.options = options
        group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "consul-standin")
        state = AgentState(loop: group.loops[0], options: options)
        port = options.port
        do {
            try start()
        } catch {
            group.syncShutdown()
            throw error
        }
    }

    public var address: TCPAddress { TCPAddress(host: "127.0.0.1", port: port) }
    /// `consul://127.0.0.1:<port>`, the registry URL for it.
    public var registryAddress: String { "consul://127.0.0.1:\(port)" }
    private var loop: UVEventLoop { group.loops[0] }

    /// Listens (again) on the same port. Never call on a loop thread.
    public func start() throws(LoopError) {
        guard server == nil else { return }
        let server = try LoopHTTPServer.start(
            .init(host: "127.0.0.1", port: port, idleTimeout: .seconds(700)), on: group
        ) { [self] request, responder in
            handle(request, responder)
        }
        port = server.port
        self.server = server
    }

    /// Closes the listener and every connection: the agent is unreachable until `start()`.
    public func stop() {
        server?.close()
        server = nil
        loop.runSync { self.state.dropWaiters() }
    }

    /// An agent restart without its data: connections drop, every registration is gone and, with
    /// `resetIndex`, the index starts over from `initialIndex`.
    public func restart(resetIndex: Bool = true) throws(LoopError) {
        stop()
        loop.runSync { self.state.forgetEverything(resetIndex: resetIndex) }
        try start()
    }

    public func shutdown() {
        stop()
        loop.runSync { self.state.shutdown() }
        group.syncShutdown()
    }

    // MARK: Swift controls (never on a loop thread)

    public func checkStatus(_ checkID: String) -> String? { loop.runSync { self.state.checks[checkID]?.status } }
    public func checkOutput(_ checkID: String) -> String? { loop.runSync { self.state.checks[checkID]?.output } }
    public var serviceIDs: [String] { loop.runSync { self.state.services.keys.sorted() } }
    public var counters: Counters { loop.runSync { self.state.counters } }
    public var currentIndex: UInt64 { loop.runSync { self.state.index } }
    public func index(ofService name: String) -> UInt64 { loop.runSync { self.state.currentIndex(of: name) } }

    public func expireCheck(_ checkID: String) {
        loop.runSync { if let check = self.state.checks[checkID] { self.state.expire(check) } }
    }

    public func setSerfHealth(passing: Bool) { loop.runSync { self.state.setSerf(passing: passing) } }

    /// The next `count` requests (controls excepted) are answered with `status`.
    public func failNextRequests(_ count: Int, status: Int = 500) {
        loop.runSync {
            self.faults.failCount = count
            self.faults.failStatus = status
        }
    }

    /// The next `count` requests (controls excepted) get their connection closed instead of an answer.
    public func dropNextRequests(_ count: Int) { loop.runSync { self.faults.dropCount = count } }

    public func setLatency(_ latency: Duration) { loop.runSync { self.faults.latency = latency } }

    // MARK: HTTP

    private func handle(_ request: LoopHTTPRequest, _ responder: LoopHTTPResponder) {
        let path = String(request.path)
        if path.hasPrefix("/_standin/") {
            return responder.respond(control(path, request))
        }
        state.counters.requests += 1
        if faults.dropCount > 0 {
            faults.dropCount -= 1
            return responder.abandon()
        }
        if faults.failCount > 0 {
            faults.failCount -= 1
            return responder.respond(text(faults.failStatus, "injected failure"))
        }
        if faults.latency > .zero {
            loop.scheduleTimer(after: faults.latency) { [self] in route(path, request, responder) }
        } else {
            route(path, request, responder)
        }
    }

    private func route(_ path: String, _ request: LoopHTTPRequest, _ responder: LoopHTTPResponder) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { LoopHTTPPercent.decode($0) }
        // ["", "v1", "agent", "service", "register"]
        guard segments.count >= 3, segments[1] == "v1" else { return responder.respond(text(404, "no such endpoint")) }
        let rest = Array(segments.dropFirst(2))
        switch (rest.first, rest.count > 1 ? rest[1] : nil) {
        case ("agent", "service") where rest.count >= 3:
            guard request.method == "PUT" else { return responder.respond(methodNotAllowed(request)) }
            if rest[2] == "register" && rest.count == 3 {
                guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else {
                    return responder.respond(text(400, "Request decode failed: invalid JSON"))
                }
                responder.respond(write { () throws(AgentState.WriteError) in try state.register(object) })
            } else if rest[2] == "deregister" && rest.count >= 4 {
                let id = rest[3...].joined(separator: "/")
                responder.respond(write { () throws(AgentState.WriteError) in try state.deregister(id) })
            } else {
                responder.respond(text(404, "no such endpoint"))
            }
        case ("agent", "check") where rest.count >= 4:
            guard request.method == "PUT" else { return responder.respond(methodNotAllowed(request)) }
            let id = rest[3...].joined(separator: "/")
            let note = request.queryItems.first { $0.name == "note" }?.value
            let status: String
            var output = note
            switch rest[2] {
            case "pass": status = "passing"
            case "warn": status = "warning"
            case "fail": status = "critical"
            case "update":
                let object = (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]) ?? [:]
                let fields = AgentState.normalized(object)
                guard let given = fields["status"] as? String, ["passing", "warning", "critical"].contains(given) else {
                    return responder.respond(text(400, "Invalid check status"))
                }
                status = given
                output = fields["output"] as? String
            default: return responder.respond(text(404, "no such endpoint"))
            }
            responder.respond(
                write { () throws(AgentState.WriteError) in try state.updateCheck(id, status: status, output: output) })
        case ("health", "service") where rest.count >= 3:
            guard request.method == "GET" else { return responder.respond(methodNotAllowed(request)) }
            state.counters.healthQueries += 1
            let name = rest[2...].joined(separator: "/")
            let query = request.queryItems
            let passing = query.contains {
                $0.name == "passing" && ($0.value == nil || $0.value == "true" || $0.value == "1")
            }
            let tags = query.filter { $0.name == "tag" }.compactMap(\.value)
            let index = query.first { $0.name == "index" }?.value.flatMap { UInt64($0) } ?? 0
            let wait = query.first { $0.name == "wait" }?.value.flatMap { GoDuration.parse($0) } ?? options.defaultWait
            state.block(responder, name: name, index: index, wait: wait) { [state] in
                let body =
                    (try? JSONSerialization.data(withJSONObject: state.health(name: name, passing: passing, tags: tags)))
                    .map { Array($0) } ?? Array("[]".utf8)
                return LoopHTTPResponse(
                    status: 200,
                    headers: [
                        "Content-Type": "application/json", "X-Consul-Index": "\(state.currentIndex(of: name))",
                        "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0",
                    ], body: body)
            }
        default:
            responder.respond(text(404, "no such endpoint"))
        }
    }

    private func write(_ body: () throws(AgentState.WriteError) -> Void) -> LoopHTTPResponse {
        do throws(AgentState.WriteError) {
            try body()
            return LoopHTTPResponse(status: 200)
        } catch {
            switch error {
            case .badRequest(let why): return text(400, why)
            case .notFound(let why): return text(404, why)
            }
        }
    }

    private func control(_ path: String, _ request: LoopHTTPRequest) -> LoopHTTPResponse {
        let parts = path.split(separator: "/").map(String.init)
        let query = request.queryItems
        switch parts.count > 1 ? parts[1] : "" {
        case "expire" where parts.count >= 3:
            let id = LoopHTTPPercent.decode(Substring(parts[2...].joined(separator: "/")))
            guard let check = state.checks[id] else { return text(404, "unknown check") }
            state.expire(check)
        case "serf":
            state.setSerf(passing: query.first { $0.name == "status" }?.value != "critical")
        case "restart":
            state.forgetEverything(resetIndex: true)
        case "fail":
            faults.failStatus = query.first { $0.name == "status" }?.value.flatMap { Int($0) } ?? 500
            faults.failCount = query.first { $0.name == "count" }?.value.flatMap { Int($0) } ?? 1
        case "counters":
            let body = (try? JSONEncoder().encode(state.counters)).map { Array($0) } ?? []
            return LoopHTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: body)
        default:
            return text(404, "no such control")
        }
        return LoopHTTPResponse(status: 200)
    }

    private func methodNotAllowed(_ request: LoopHTTPRequest) -> LoopHTTPResponse {
        text(405, "method \(request.method) not allowed")
    }

    private func text(_ status: Int, _ message: String) -> LoopHTTPResponse {
        LoopHTTPResponse(status: status, text: message, contentType: "text/plain; charset=utf-8")
    }
}
