import Foundation
import MotanHTTP
import MotanLoop

/// The agent's data and its rules (consul-agent-api.md §4): one node, services by id, checks by id,
/// a global index, an index per service name, and the blocked queries waiting on each name.
/// Loop-confined: every method runs on the stand-in's loop.
final class AgentState {
    struct Service {
        var id: String
        var name: String
        var tags: [String]
        var address: String
        var port: Int
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    final class Check {
        let id: String
        let name: String
        let serviceID: String
        let serviceName: String
        var status: String
        var output = ""
        let ttl: Duration?
        var ttlTimer: LoopTimer?
        let deregisterAfter: Duration?
        var criticalSince: UInt64?
        let createIndex: UInt64
        var modifyIndex: UInt64

        init(
            id: String, name: String, service: Service, status: String, ttl: Duration?, deregisterAfter: Duration?,
            index: UInt64
        ) {
            self.id = id
            self.name = name
            serviceID = service.id
            serviceName = service.name
            self.status = status
            self.ttl = ttl
            self.deregisterAfter = deregisterAfter
            createIndex = index
            modifyIndex = index
        }
    }

    final class Waiter {
        let responder: LoopHTTPResponder
        let name: String
        let index: UInt64
        let answer: () -> LoopHTTPResponse
        var timer: LoopTimer?

        init(responder: LoopHTTPResponder, name: String, index: UInt64, answer: @escaping () -> LoopHTTPResponse) {
            self.responder = responder
            self.name = name
            self.index = index
            self.answer = answer
        }
    }

    let loop: UVEventLoop
    let options: ConsulAgentStandIn.Options
    private(set) var index: UInt64
    private(set) var services: [String: Service] = [:]
    private(set) var checks: [String: Check] = [:]
    private var serviceIndex: [String: UInt64] = [:]
    private(set) var serfPassing = true
    private var waiters: [String: [ObjectIdentifier: Waiter]] = [:]
    private var reaper: LoopTimer?
    var counters = ConsulAgentStandIn.Counters()

    init(loop: UVEventLoop, options: ConsulAgentStandIn.Options) {
        self.loop = loop
        self.options = options
        index = options.initialIndex
    }

    // MARK: index and blocking

    /// The index a read of `name` reports: at least 1, as Consul's always is.
    func currentIndex(of name: String) -> UInt64 { max(1, serviceIndex[name] ?? 1) }

    /// A write changed what `names` return: move the index and answer the queries waiting on them.
    private func changed(_ names: some Sequence<String>) {
        index += 1
        for name in Set(names) {
            serviceIndex[name] = index
            wake(name)
        }
    }

    private func wake(_ name: String) {
        guard let waiting = waiters[name] else { return }
        let now = currentIndex(of: name)
        for (key, waiter) in waiting where now > waiter.index {
            waiters[name]?[key] = nil
            waiter.timer?.cancel()
            waiter.responder.respond(waiter.answer())
        }
        counters.blockedQueries = waiters.values.reduce(0) { $0 + $1.count }
    }

    /// Answers now, or once the name's index passes `index`, or when `wait` runs out (Consul §3).
    func block(
        _ responder: LoopHTTPResponder, name: String, index wanted: UInt64, wait: Duration,
        answer: @escaping () -> LoopHTTPResponse
    ) {
        guard wanted > 0, currentIndex(of: name) <= wanted else {
            return responder.respond(answer())
        }
        let waiter = Waiter(responder: responder, name: name, index: wanted, answer: answer)
        let key = ObjectIdentifier(waiter)
        waiter.timer = loop.scheduleTimer(after: min(wait, options.maxWait)) { [weak self] in
            guard let self, self.waiters[name]?[key] != nil else { return }
            self.waiters[name]?[key] = nil
            self.counters.blockedQueries -= 1
            responder.respond(answer())
        }
        waiters[name, default: [:]][key] = waiter
        counters.blockedQueries += 1
    }

    // MARK: services and checks

    enum WriteError: Error {
        case badRequest(String)
        case notFound(String)
    }

    func register(_ body: [String: Any]) throws(WriteError) {
        let fields = Self.normalized(body)
        guard let name = fields["name"] as? String, !name.isEmpty else { throw .badRequest("Missing service name") }
        let id = (fields["id"] as? String).flatMap { $0.isEmpty ? nil : $0 } ?? name
        var changedNames = [name]
        if let old = services[id] {
            changedNames.append(old.name)
            removeService(id)
        }
        let next = index + 1
        let service = Service(
            id: id, name: name, tags: fields["tags"] as? [String] ?? [], address: fields["address"] as? String ?? "",
            port: (fields["port"] as? NSNumber)?.intValue ?? 0, createIndex: next, modifyIndex: next)
        // A single `Check` is `service:<ID>`; a `Checks` list numbers its members from 1.
        var definitions: [(id: String, body: [String: Any])] = []
        if let check = fields["check"] as? [String: Any] {
            definitions.append(("service:\(id)", Self.normalized(check)))
        }
        if let list = fields["checks"] as? [[String: Any]] {
            for (position, check) in list.enumerated() {
                definitions.append(("service:\(id):\(position + 1)", Self.normalized(check)))
            }
        }
        var newChecks: [Check] = []
        for (defaultID, definition) in definitions {
            var ttl: Duration?
            if let text = definition["ttl"] as? String {
                guard let parsed = GoDuration.parse(text) else { throw .badRequest("Invalid TTL '\(text)'") }
                ttl = parsed
            }
            var deregisterAfter: Duration?
            if let text = definition["deregistercriticalserviceafter"] as? String {
                guard let parsed = GoDuration.parse(text) else { throw .badRequest("Invalid duration '\(text)'") }
                deregisterAfter = max(parsed, options.deregisterMinimum)
            }
            let checkID = (definition["checkid"] as? String) ?? defaultID
            let status = (definition["status"] as? String) ?? "critical"
            guard ["passing", "warning", "critical"].contains(status) else { throw .badRequest("Invalid status") }
            let check = Check(
                id: checkID, name: definition["name"] as? String ?? "Service '\(name)' check", service: service,
                status: status, ttl: ttl, deregisterAfter: deregisterAfter, index: next)
            if status == "critical" { check.criticalSince = loop.now }
            newChecks.append(check)
        }
        services[id] = service
        for check in newChecks {
            checks[check.id] = check
            armTTL(check)
        }
        counters.registrations += 1
        changed(changedNames)
        updateReaper()
    }

    func deregister(_ id: String) throws(WriteError) {
        guard let service = services[id] else {
            if options.unknownDeregisterStatus == 404 { throw .notFound("Unknown service ID \"\(id)\"") }
            return
        }
        removeService(id)
        counters.deregistrations += 1
        changed([service.name])
    }

    private func removeService(_ id: String) {
        services[id] = nil
        for (checkID, check) in checks where check.serviceID == id {
            check.ttlTimer?.cancel()
            checks[checkID] = nil
        }
    }

    /// pass / warn / fail / update: set the status, restart the TTL clock; the index moves only
    /// when the status changed.
    func updateCheck(_ id: String, status: String, output: String?) throws(WriteError) {
        guard let check = checks[id] else { throw .notFound("CheckID \"\(id)\" does not have associated TTL") }
        if status == "passing" { counters.passes[id, default: 0] += 1 }
        if let output { check.output = output }
        armTTL(check)
        setStatus(check, status)
    }

    private func setStatus(_ check: Check, _ status: String) {
        guard check.status != status else { return }
        check.status = status
        check.criticalSince = status == "critical" ? loop.now : nil
        check.modifyIndex = index + 1
        changed([check.serviceName])
    }

    private func armTTL(_ check: Check) {
        check.ttlTimer?.cancel()
        guard let ttl = check.ttl else { return }
        check.ttlTimer = loop.scheduleTimer(after: ttl) { [weak self, weak check] in
            guard let self, let check else { return }
            check.ttlTimer = nil
            self.expire(check)
        }
    }

    func expire(_ check: Check) {
        check.ttlTimer?.cancel()
        check.ttlTimer = nil
        check.output = "TTL expired"
        counters.expirations += 1
        setStatus(check, "critical")
    }

    func setSerf(passing: Bool) {
        guard serfPassing != passing else { return }
        serfPassing = passing
        changed(Set(services.values.map(\.name)))
    }

    /// Forgets every registration, as an agent restarted without its data; with `resetIndex` the
    /// index starts over, so clients see it go backwards.
    func forgetEverything(resetIndex: Bool) {
        let names = Set(services.values.map(\.name)).union(serviceIndex.keys)
        for check in checks.values { check.ttlTimer?.cancel() }
        checks.removeAll()
        services.removeAll()
        serfPassing = true
        if resetIndex {
            index = options.initialIndex
            serviceIndex.removeAll()
            for name in names { wakeAll(name) }
        } else {
            changed(names)
        }
        updateReaper()
    }

    private func wakeAll(_ name: String) {
        for waiter in waiters.removeValue(forKey: name)?.values ?? [:].values {
            waiter.timer?.cancel()
            waiter.responder.respond(waiter.answer())
        }
        counters.blockedQueries = waiters.values.reduce(0) { $0 + $1.count }
    }

    /// Drops waiters without answering (their connections are gone).
    func dropWaiters() {
        for waiter in waiters.values.flatMap(\.values) { waiter.timer?.cancel() }
        waiters.removeAll()
        counters.blockedQueries = 0
    }

    /// `DeregisterCriticalServiceAfter`: removes services whose check stayed critical that long.
    private func updateReaper() {
        let needed = checks.values.contains { $0.deregisterAfter != nil }
        if needed && reaper == nil {
            reaper = loop.scheduleRepeatingTimer(every: options.reaperPeriod) { [weak self] in self?.reap() }
        } else if !needed, let timer = reaper {
            timer.cancel()
            reaper = nil
        }
    }

    private func reap() {
        let now = loop.now
        for check in checks.values {
            guard let after = check.deregisterAfter, let since = check.criticalSince,
                now - since >= after.roundedUpMilliseconds, services[check.serviceID] != nil
            else { continue }
            try? deregister(check.serviceID)
        }
        updateReaper()
    }

    func shutdown() {
        dropWaiters()
        for check in checks.values { check.ttlTimer?.cancel() }
        reaper?.cancel()
        reaper = nil
    }

    // MARK: reads

    /// The `/v1/health/service/<name>` body: every instance, or only those whose checks (the node's
    /// included) all pass, optionally filtered by tags.
    func health(name: String, passing: Bool, tags: [String]) -> [[String: Any]] {
        let node: [String: Any] = [
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "node1", "Address": "127.0.0.1",
            "Datacenter": "dc1", "TaggedAddresses": ["lan": "127.0.0.1", "wan": "127.0.0.1"],
            "Meta": [String: String](),
            "CreateIndex": 5, "ModifyIndex": 5,
        ]
        let serf: [String: Any] = [
            "Node": "node1", "CheckID": "serfHealth", "Name": "Serf Health Status",
            "Status": serfPassing ? "passing" : "critical", "Notes": "",
            "Output": serfPassing ? "Agent alive and reachable" : "Agent not live or unreachable", "ServiceID": "",
            "ServiceName": "", "ServiceTags": [String](), "CreateIndex": 5, "ModifyIndex": 5,
        ]
        var out: [[String: Any]] = []
        for service in services.values.sorted(by: { $0.id < $1.id }) where service.name == name {
            guard tags.allSatisfy(service.tags.contains) else { continue }
            let own = checks.values.filter { $0.serviceID == service.id }.sorted { $0.id < $1.id }
            if passing && (!serfPassing || own.contains { $0.status != "passing" }) { continue }
            let checkBodies: [[String: Any]] =
                [serf]
                + own.map { check in
                    [
                        "Node": "node1", "CheckID": check.id, "Name": check.name, "Status": check.status, "Notes": "",
                        "Output": check.output, "ServiceID": service.id, "ServiceName": service.name,
                        "ServiceTags": service.tags, "CreateIndex": check.createIndex, "ModifyIndex": check.modifyIndex,
                    ]
                }
            out.append([
                "Node": node,
                "Service": [
                    "ID": service.id, "Service": service.name, "Tags": service.tags, "Address": service.address,
                    "Meta": [String: String](), "Port": service.port, "Weights": ["Passing": 1, "Warning": 1],
                    "EnableTagOverride": false, "CreateIndex": service.createIndex, "ModifyIndex": service.modifyIndex,
                ] as [String: Any],
                "Checks": checkBodies,
            ])
        }
        return out
    }

    /// Member names compare case-insensitively and accept snake_case, as the agent's decoder does.
    static func normalized(_ object: [String: Any]) -> [String: Any] {
        var out: [String: Any] = [:]
        for (key, value) in object {
            out[key.lowercased().replacingOccurrences(of: "_", with: "")] = value
        }
        return out
    }
}

/// Go's duration syntax (`30s`, `1m30s`, `500ms`, `1.5h`), which Consul uses for TTLs and waits.
enum GoDuration {
    static func parse(_ text: String) -> Duration? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        if rest == "0" { return .zero }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !$0.isNumber && $0 != "." }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1e-9
            case "us", "µs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            default: return nil
            }
            total += value * scale
        }
        return .milliseconds(Int64((total * 1000).rounded()))
    }
}
