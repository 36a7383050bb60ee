import ConsulAgentStandIn
import Foundation
import MotanHTTP
import MotanLoop
import Testing

/// The stand-in's own behaviour, which the registry tests rely on (consul-agent-api.md §4).
@Suite("Consul agent stand-in")
struct StandInTests {
    static let register = """
        {"id":"127.0.0.1:9-a.B","Name":"motanrpc_g","Tags":["protocol_motan2","x"],"Address":"127.0.0.1",
         "Port":9,"check":{"ttl":"1500ms"}}
        """

    @Test("checks start critical; pass/fail set the status; the index moves only when it changes")
    func statusAndIndex() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        #expect(standIn.checkStatus("service:127.0.0.1:9-a.B") == "critical")
        let registered = try await agent.health("motanrpc_g")
        #expect(registered.index >= 11 && registered.count == 1)
        #expect(try await agent.health("motanrpc_g", passing: true).count == 0)
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        let passed = try await agent.health("motanrpc_g", passing: true)
        #expect(passed.count == 1 && passed.index > registered.index)
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        #expect(try await agent.health("motanrpc_g").index == passed.index)
        #expect(standIn.counters.passes["service:127.0.0.1:9-a.B"] == 2)
        #expect(try await agent.put("/v1/agent/check/fail/service:127.0.0.1:9-a.B").status == 200)
        #expect(try await agent.health("motanrpc_g").index > passed.index)
        #expect(
            try await agent.put("/v1/agent/check/update/service:127.0.0.1:9-a.B", #"{"status":"warning"}"#).status
                == 200)
        #expect(standIn.checkStatus("service:127.0.0.1:9-a.B") == "warning")
    }

    @Test("writes need PUT; bad input and unknown checks get 400 and 404")
    func methodsAndErrors() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        for path in [
            "/v1/agent/check/pass/service:127.0.0.1:9-a.B", "/v1/agent/service/register",
            "/v1/agent/service/deregister/127.0.0.1:9-a.B",
        ] {
            #expect(try await agent.send("GET", path).status == 405)
            #expect(try await agent.send("POST", path).status == 405)
        }
        #expect(standIn.counters.passes.isEmpty)
        #expect(try await agent.put("/v1/agent/service/register", #"{"ID":"x"}"#).status == 400)
        let unknown = try await agent.put("/v1/agent/check/pass/service:nope")
        #expect(unknown.status == 404 && unknown.bodyText.contains("does not have associated TTL"))
        let health = try await agent.send("GET", "/v1/health/service/none?passing")
        #expect(health.status == 200 && health.bodyText == "[]")
        #expect(health.headers["X-Consul-KnownLeader"] == "true" && health.headers["X-Consul-LastContact"] == "0")
        #expect(health.headers["Content-Type"] == "application/json")
        #expect((UInt64(health.headers["X-Consul-Index"] ?? "") ?? 0) >= 1)
        #expect(try await agent.put("/v1/agent/service/deregister/unknown").status == 200)
        #expect(try await agent.put("/v1/agent/service/deregister/127.0.0.1:9-a.B").status == 200)
        #expect(standIn.serviceIDs.isEmpty && standIn.checkStatus("service:127.0.0.1:9-a.B") == nil)
    }

    @Test("a blocked query wakes on a status change, not on a pass that keeps it")
    func blockingWakesOnChange() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        let start = try await agent.health("motanrpc_g", passing: true)
        let blocked = Task { try await agent.health("motanrpc_g", passing: true, index: start.index, wait: "300s") }
        #expect(await eventually { standIn.counters.blockedQueries == 1 })
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        #expect(standIn.counters.blockedQueries == 1)
        #expect(try await agent.put("/v1/agent/check/fail/service:127.0.0.1:9-a.B").status == 200)
        let woken = try await blocked.value
        #expect(woken.index > start.index && woken.count == 0)
    }

    @Test("a blocked query without a change answers when its wait runs out, with the same index")
    func blockingTimesOut() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        let first = try await agent.health("motanrpc_none")
        let again = try await agent.health("motanrpc_none", index: first.index, wait: "1s")
        #expect(again.index == first.index)
        #expect(standIn.counters.blockedQueries == 0)
    }

    @Test("a TTL that runs out turns the check critical and wakes blocked queries")
    func ttlExpiry() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        let start = try await agent.health("motanrpc_g", passing: true)
        #expect(start.count == 1)
        // No more passes: the 1.5 s TTL runs out and the waiting query answers.
        let woken = try await agent.health("motanrpc_g", passing: true, index: start.index, wait: "120s")
        #expect(woken.count == 0 && woken.index > start.index)
        #expect(standIn.checkStatus("service:127.0.0.1:9-a.B") == "critical")
        #expect(standIn.checkOutput("service:127.0.0.1:9-a.B") == "TTL expired")
    }

    @Test("passing counts the node's serfHealth; tags filter with AND")
    func serfAndTags() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        #expect(try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B").status == 200)
        #expect(try await agent.health("motanrpc_g", passing: true, extra: "&tag=x&tag=protocol_motan2").count == 1)
        #expect(try await agent.health("motanrpc_g", passing: true, extra: "&tag=x&tag=y").count == 0)
        let before = try await agent.health("motanrpc_g", passing: true)
        standIn.setSerfHealth(passing: false)
        let after = try await agent.health("motanrpc_g", passing: true)
        #expect(after.count == 0 && after.index > before.index)
        #expect(try await agent.health("motanrpc_g").count == 1)
    }

    @Test("re-registering an id replaces it; a Checks list is numbered")
    func replaceAndNumbering() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        let two = #"{"Name":"svc","Checks":[{"TTL":"1m"},{"TTL":"1h30m","Status":"passing"}]}"#
        #expect(try await agent.put("/v1/agent/service/register", two).status == 200)
        #expect(standIn.checkStatus("service:svc:1") == "critical")
        #expect(standIn.checkStatus("service:svc:2") == "passing")
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        #expect(standIn.serviceIDs == ["127.0.0.1:9-a.B", "svc"])
        #expect(standIn.counters.registrations == 3)
    }

    @Test("DeregisterCriticalServiceAfter removes a service that stayed critical")
    func reaper() async throws {
        let standIn = try ConsulAgentStandIn(
            .init(deregisterMinimum: .milliseconds(200), reaperPeriod: .milliseconds(100)))
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        let body = #"{"Name":"gone","Check":{"TTL":"30s","DeregisterCriticalServiceAfter":"10ms"}}"#
        #expect(try await agent.put("/v1/agent/service/register", body).status == 200)
        #expect(await eventually { standIn.serviceIDs.isEmpty })
    }

    @Test("control endpoints: restart resets the index and wakes waiters; injected failures")
    func controls() async throws {
        let standIn = try ConsulAgentStandIn()
        let agent = StandInClient(standIn)
        defer { agent.shutdown() }
        #expect(try await agent.put("/v1/agent/service/register", Self.register).status == 200)
        for _ in 0..<5 {
            _ = try await agent.put("/v1/agent/check/pass/service:127.0.0.1:9-a.B")
            _ = try await agent.put("/v1/agent/check/fail/service:127.0.0.1:9-a.B")
        }
        let before = try await agent.health("motanrpc_g")
        let blocked = Task { try await agent.health("motanrpc_g", index: before.index, wait: "300s") }
        #expect(await eventually { standIn.counters.blockedQueries == 1 })
        #expect(try await agent.put("/_standin/restart").status == 200)
        let after = try await blocked.value
        #expect(after.index < before.index && after.count == 0)
        #expect(try await agent.put("/_standin/fail?status=503&count=2").status == 200)
        #expect(try await agent.send("GET", "/v1/health/service/x").status == 503)
        #expect(try await agent.send("GET", "/v1/health/service/x").status == 503)
        #expect(try await agent.send("GET", "/v1/health/service/x").status == 200)
        let counters = try await agent.send("GET", "/_standin/counters")
        #expect(counters.status == 200 && counters.bodyText.contains("\"registrations\":1"))
    }
}

/// A small HTTP client for the stand-in's own tests.
final class StandInClient: @unchecked Sendable {
    let standIn: ConsulAgentStandIn
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "standin-test")
    let http: LoopHTTPClient

    init(_ standIn: ConsulAgentStandIn) {
        self.standIn = standIn
        http = LoopHTTPClient(loop: group.loops[0])
    }

    func send(_ method: String, _ target: String, _ body: String = "") async throws -> LoopHTTPResponse {
        try await http.execute(
            LoopHTTPRequest(method: method, target: target, body: Array(body.utf8)), to: standIn.address,
            timeout: .seconds(600))
    }

    func put(_ target: String, _ body: String = "") async throws -> LoopHTTPResponse {
        try await send("PUT", target, body)
    }

    func health(
        _ name: String, passing: Bool = false, index: UInt64? = nil, wait: String? = nil, extra: String = ""
    ) async throws -> (count: Int, index: UInt64) {
        var target = "/v1/health/service/\(name)?stale" + (passing ? "&passing" : "") + extra
        if let index { target += "&index=\(index)" }
        if let wait { target += "&wait=\(wait)" }
        let response = try await send("GET", target)
        let entries = try JSONSerialization.jsonObject(with: Data(response.body)) as? [Any] ?? []
        return (entries.count, UInt64(response.headers["X-Consul-Index"] ?? "") ?? 0)
    }

    func shutdown() {
        group.loops[0].runSync { self.http.close() }
        group.syncShutdown()
        standIn.shutdown()
    }
}
