import ConsulAgentStandIn
import Foundation
import MotanConsul
import MotanHTTP
import MotanLoop
import MotanRegistry
import Synchronization

/// A value shared between loop threads and the test, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { storage.withLock { body(&$0) } }
    var value: Value { storage.withLock { $0 } }
}

/// The agent a test talks to: a real one when `CONSUL_HTTP_ADDR` is set, else the stand-in.
final class AgentUnderTest: @unchecked Sendable {
    let standIn: ConsulAgentStandIn?
    let address: TCPAddress
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "consul-test-client")
    let http: LoopHTTPClient

    init(_ options: ConsulAgentStandIn.Options = .init()) throws {
        if let text = ProcessInfo.processInfo.environment["CONSUL_HTTP_ADDR"], !text.isEmpty {
            var hostPort = text
            if let scheme = hostPort.range(of: "://") { hostPort = String(hostPort[scheme.upperBound...]) }
            address = try TCPAddress(parsing: hostPort)
            standIn = nil
        } else {
            let standIn = try ConsulAgentStandIn(options)
            self.standIn = standIn
            address = standIn.address
        }
        http = LoopHTTPClient(loop: group.loops[0])
    }

    var isReal: Bool { standIn == nil }
    var registryAddress: String { "consul://\(address.host):\(address.port)" }

    /// The stand-in, or nil after printing why the test is skipped against a real agent.
    func requireStandIn(_ test: String) -> ConsulAgentStandIn? {
        if standIn == nil { print("SKIP \(test): needs the stand-in's test controls (CONSUL_HTTP_ADDR is set)") }
        return standIn
    }

    static func noteTarget(_ test: String) {
        if ProcessInfo.processInfo.environment["CONSUL_HTTP_ADDR"]?.isEmpty ?? true {
            print(
                "NOTE \(test): against the Consul-agent stand-in; set CONSUL_HTTP_ADDR to also run it against a real agent"
            )
        }
    }

    func request(_ method: String, _ target: String, body: String = "") async throws -> LoopHTTPResponse {
        try await http.execute(
            LoopHTTPRequest(method: method, target: target, body: Array(body.utf8)), to: address, timeout: .seconds(30))
    }

    /// The status of `checkID` as the health endpoint reports it (works for both kinds of agent).
    func checkStatus(service: String, checkID: String) async throws -> String? {
        let response = try await request("GET", "/v1/health/service/\(service)")
        let entries = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        for entry in entries {
            for check in entry["Checks"] as? [[String: Any]] ?? [] where check["CheckID"] as? String == checkID {
                return check["Status"] as? String
            }
        }
        return nil
    }

    func serviceEntries(_ service: String, passing: Bool = false) async throws -> [[String: Any]] {
        let response = try await request("GET", "/v1/health/service/\(service)\(passing ? "?passing" : "")")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
    }

    func shutdown() {
        group.loops[0].runSync { self.http.close() }
        group.syncShutdown()
        standIn?.shutdown()
    }
}

/// A registry on a loop group of its own, so a test can stop it as a crashed process would stop.
final class RegistryUnderTest: @unchecked Sendable {
    let group: UVEventLoopGroup
    let registry: ConsulRegistry

    init(_ agent: AgentUnderTest, name: String, configuration: ConsulRegistry.Configuration = .init()) throws {
        group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: name)
        registry = try ConsulRegistry(
            address: agent.registryAddress, loop: group.loops[0], configuration: configuration)
    }

    func shutdown() async {
        await registry.close()
        group.syncShutdown()
    }

    /// Stops the loop without closing the registry: its heartbeat stops, nothing is deregistered.
    func crash() { group.syncShutdown() }
}

/// Every list a subscriber hears, in order, with a way to wait for the one a test expects.
final class SubscriberLog: @unchecked Sendable {
    private struct Waiter {
        let id: Int
        let predicate: @Sendable ([MotanURL]) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }
    private let lists = Locked<[[MotanURL]]>([])
    private let waiters = Locked<[Waiter]>([])
    private let nextID = Atomic<Int>(0)

    var listener: RegistryListener {
        { [self] urls in
            lists.withLock { $0.append(urls) }
            let ready = waiters.withLock { waiting in
                let ready = waiting.filter { $0.predicate(urls) }
                waiting.removeAll { $0.predicate(urls) }
                return ready.map(\.continuation)
            }
            for continuation in ready { continuation.resume(returning: true) }
        }
    }

    var all: [[MotanURL]] { lists.value }
    var latest: [MotanURL]? { lists.value.last }

    /// How many notifications have arrived: a mark for `wait(since:)`.
    var count: Int { lists.value.count }

    /// Waits for a notification satisfying `predicate`: the latest one counts, or with `since`,
    /// any that arrived after that mark. The bound only keeps a broken build from hanging; tests
    /// assert what arrives, not when.
    func wait(
        since mark: Int? = nil, upTo bound: Duration = .seconds(60),
        _ predicate: @escaping @Sendable ([MotanURL]) -> Bool
    ) async -> Bool {
        let id = nextID.add(1, ordering: .relaxed).newValue
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let already = lists.withLock { lists in
                if let mark {
                    if lists.dropFirst(mark).contains(where: predicate) { return true }
                } else if let latest = lists.last, predicate(latest) {
                    return true
                }
                waiters.withLock { $0.append(Waiter(id: id, predicate: predicate, continuation: continuation)) }
                return false
            }
            if already {
                continuation.resume(returning: true)
                return
            }
            Task {
                try? await Task.sleep(for: bound)
                let expired = self.waiters.withLock { waiting -> CheckedContinuation<Bool, Never>? in
                    guard let index = waiting.firstIndex(where: { $0.id == id }) else { return nil }
                    return waiting.remove(at: index).continuation
                }
                expired?.resume(returning: false)
            }
        }
    }
}

/// Polls `condition` until it holds; the bound only keeps a broken build from hanging.
func eventually(upTo bound: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + bound
    while clock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}

/// A service URL on a port unique to the test, so tests against a shared real agent do not meet.
func serviceURL(port: Int, path: String = "com.example.Hello", group: String) -> MotanURL {
    MotanURL(
        protocol: "motan2", host: "127.0.0.1", port: port, path: path,
        parameters: ["group": group, "nodeType": "service", "serialization": "simple"])
}

func uniqueGroup(_ base: String) -> String { "\(base)-\(UInt32.random(in: 0...UInt32.max))" }
