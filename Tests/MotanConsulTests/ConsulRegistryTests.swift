import ConsulAgentStandIn
import Foundation
import MotanConsul
import MotanLoop
import MotanRegistry
import Testing

/// The Consul registry against the stand-in, or against a real agent when `CONSUL_HTTP_ADDR` is set.
@Suite("Consul registry", .serialized)
struct ConsulRegistryTests {
    static let fast = ConsulRegistry.Configuration(
        ttl: .seconds(30), passInterval: .seconds(20), blockingWait: .seconds(30), requestTimeout: .seconds(5),
        initialRetryDelay: .milliseconds(50), maxRetryDelay: .milliseconds(400))

    @Test("registration uses Motan's name, id, tags and a TTL check that starts critical")
    func registrationConventions() async throws {
        AgentUnderTest.noteTarget("registrationConventions")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: Self.fast)
        let group = uniqueGroup("conv")
        let url = serviceURL(port: 18_001, group: group)
        try await server.registry.register(url)
        let entries = try await agent.serviceEntries("motanrpc_\(group)")
        #expect(entries.count == 1)
        let service = entries.first?["Service"] as? [String: Any]
        #expect(service?["ID"] as? String == "127.0.0.1:18001-com.example.Hello")
        #expect(service?["Port"] as? Int == 18_001)
        let tags = service?["Tags"] as? [String] ?? []
        #expect(tags.first == "protocol_motan2")
        #expect(tags.contains("URL_" + MotanURL.percentEncoded(url.description)))
        let status = try await agent.checkStatus(
            service: "motanrpc_\(group)", checkID: "service:127.0.0.1:18001-com.example.Hello")
        #expect(status == "critical")
        #expect(try await server.registry.discover(url).isEmpty)
        #expect(await server.registry.registrations() == [Registration(url: url, state: .unavailable)])
        await server.shutdown()
    }

    @Test("switch on passes the check at once, switch off fails it at once")
    func switchFlips() async throws {
        AgentUnderTest.noteTarget("switchFlips")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: Self.fast)
        let group = uniqueGroup("flip")
        let url = serviceURL(port: 18_002, group: group)
        let name = "motanrpc_\(group)"
        let check = "service:127.0.0.1:18002-com.example.Hello"
        try await server.registry.register(url)
        #expect(try await agent.checkStatus(service: name, checkID: check) == "critical")
        // The pass interval is 20 s: a passing status right after the call can only come from the flip.
        try await server.registry.available(nil)
        #expect(try await agent.checkStatus(service: name, checkID: check) == "passing")
        #expect(try await server.registry.discover(url) == [url])
        try await server.registry.unavailable(nil)
        #expect(try await agent.checkStatus(service: name, checkID: check) == "critical")
        #expect(try await server.registry.discover(url).isEmpty)
        // One URL at a time works too.
        try await server.registry.available(url)
        #expect(try await agent.checkStatus(service: name, checkID: check) == "passing")
        await #expect(throws: RegistryError.notRegistered(serviceURL(port: 1, group: group).description)) {
            try await server.registry.available(serviceURL(port: 1, group: group))
        }
        await server.shutdown()
    }

    @Test("a subscriber sees every flip through the blocking query")
    func subscriberSeesFlips() async throws {
        AgentUnderTest.noteTarget("subscriberSeesFlips")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: Self.fast)
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: Self.fast)
        let group = uniqueGroup("sub")
        let url = serviceURL(port: 18_003, group: group)
        let other = serviceURL(port: 18_004, path: "com.example.Other", group: group)
        try await server.registry.register(url)
        try await server.registry.register(other)
        let log = SubscriberLog()
        let subscription = try await client.registry.subscribe(
            serviceURL(port: 0, group: group), listener: log.listener)
        #expect(log.all == [[]])
        for round in 0..<3 {
            try await server.registry.available(nil)
            #expect(await log.wait { $0 == [url] }, "round \(round): on")
            try await server.registry.unavailable(nil)
            #expect(await log.wait { $0.isEmpty }, "round \(round): off")
        }
        // Only this interface's instances, and only changes: on, off, three times, after the first [].
        #expect(log.all == [[]] + Array(repeating: [[url], []], count: 3).flatMap { $0 })
        await client.registry.unsubscribe(subscription)
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a stopped heartbeat lets the TTL run out and the subscriber sees the instance leave")
    func heartbeatStopped() async throws {
        AgentUnderTest.noteTarget("heartbeatStopped")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        var short = Self.fast
        short.ttl = .seconds(2)
        short.passInterval = .milliseconds(400)
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: short)
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: Self.fast)
        let group = uniqueGroup("ttl")
        let url = serviceURL(port: 18_005, group: group)
        try await server.registry.register(url)
        try await server.registry.available(nil)
        let log = SubscriberLog()
        _ = try await client.registry.subscribe(url, listener: log.listener)
        #expect(await log.wait { $0 == [url] })
        // Several TTLs long, the heartbeat alone keeps the instance listed.
        let before = await server.registry.passesSent()
        #expect(await eventually { await server.registry.passesSent() >= before + 12 })
        #expect(log.latest == [url])
        #expect(log.all.filter(\.isEmpty).isEmpty)
        server.crash()
        #expect(await log.wait { $0.isEmpty })
        let status = try await agent.checkStatus(
            service: "motanrpc_\(group)", checkID: "service:127.0.0.1:18005-com.example.Hello")
        #expect(status == "critical")
        if let standIn = agent.standIn {
            #expect(standIn.checkOutput("service:127.0.0.1:18005-com.example.Hello")?.hasPrefix("TTL expired") == true)
        }
        _ = try await agent.request("PUT", "/v1/agent/service/deregister/127.0.0.1:18005-com.example.Hello")
        await client.shutdown()
    }

    @Test("an agent restarted with its index reset: the registry registers again and discovery recovers")
    func agentRestart() async throws {
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        guard let standIn = agent.requireStandIn("agentRestart") else { return }
        var config = Self.fast
        config.passInterval = .milliseconds(500)
        // Longer than any wait below: recovery must not come from a blocking query running out.
        config.blockingWait = .seconds(300)
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: config)
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: config)
        let group = uniqueGroup("restart")
        let url = serviceURL(port: 18_006, group: group)
        try await server.registry.register(url)
        let log = SubscriberLog()
        _ = try await client.registry.subscribe(url, listener: log.listener)
        for _ in 0..<5 {  // move the index well past where a fresh agent starts
            try await server.registry.available(nil)
            try await server.registry.unavailable(nil)
        }
        try await server.registry.available(nil)
        #expect(await log.wait { $0 == [url] })
        // The subscriber's blocking query is waiting at the agent with the current, high index.
        #expect(await eventually { standIn.counters.blockedQueries == 1 })
        let indexBefore = standIn.index(ofService: "motanrpc_\(group)")
        let registrationsBefore = standIn.counters.registrations
        let mark = log.count
        try standIn.restart(resetIndex: true)
        #expect(standIn.serviceIDs.isEmpty)
        // The heartbeat finds its check unknown, registers again and passes; the subscriber, whose
        // blocking query was cut, starts over from the agent's new, lower index and sees it back.
        #expect(await log.wait(since: mark) { $0 == [url] })
        #expect(standIn.counters.registrations > registrationsBefore)
        #expect(standIn.index(ofService: "motanrpc_\(group)") < indexBefore)
        // Later flips still reach the subscriber.
        let beforeOff = log.count
        try await server.registry.unavailable(nil)
        #expect(await log.wait(since: beforeOff) { $0.isEmpty })
        let beforeOn = log.count
        try await server.registry.available(nil)
        #expect(await log.wait(since: beforeOn) { $0 == [url] })
        await client.shutdown()
        await server.shutdown()
    }

    @Test("a flip sent to an agent that forgot the instance registers it again and succeeds")
    func flipAfterForgetting() async throws {
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        guard let standIn = agent.requireStandIn("flipAfterForgetting") else { return }
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: Self.fast)
        let group = uniqueGroup("forgot")
        let url = serviceURL(port: 18_010, group: group)
        try await server.registry.register(url)
        try standIn.restart(resetIndex: true)
        // The 20 s heartbeat has not ticked: only the flip itself can repair the registration.
        try await server.registry.available(nil)
        #expect(standIn.checkStatus("service:127.0.0.1:18010-com.example.Hello") == "passing")
        #expect(standIn.counters.registrations == 2)
        await server.shutdown()
        #expect(standIn.serviceIDs.isEmpty)
    }

    @Test("an unreachable agent: retries with backoff, loops stay free, everything recovers")
    func agentUnreachable() async throws {
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        guard let standIn = agent.requireStandIn("agentUnreachable") else { return }
        var config = Self.fast
        config.passInterval = .milliseconds(300)
        config.requestTimeout = .seconds(1)
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: config)
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: config)
        let group = uniqueGroup("down")
        let url = serviceURL(port: 18_007, group: group)
        try await server.registry.register(url)
        try await server.registry.available(nil)
        let log = SubscriberLog()
        _ = try await client.registry.subscribe(url, listener: log.listener)
        #expect(await log.wait { $0 == [url] })
        standIn.stop()
        // While the agent is away, a flip fails but is kept, and both loops keep running other work.
        await #expect(throws: RegistryError.self) { try await server.registry.unavailable(nil) }
        for _ in 0..<20 {
            #expect(try await server.group.loops[0].submit { 1 } == 1)
            #expect(try await client.group.loops[0].submit { 1 } == 1)
            try await Task.sleep(for: .milliseconds(50))
        }
        let requestsWhileDown = standIn.counters.requests
        try standIn.start()
        // The pending "unavailable" reaches the agent without another call, and the watcher sees it.
        #expect(await log.wait { $0.isEmpty })
        #expect(await eventually { standIn.checkStatus("service:127.0.0.1:18007-com.example.Hello") == "critical" })
        #expect(standIn.counters.requests > requestsWhileDown)
        try await server.registry.available(nil)
        #expect(await log.wait { $0 == [url] })
        await client.shutdown()
        await server.shutdown()
    }

    @Test("closing the registry deregisters its instances; subscribers see them go")
    func gracefulShutdown() async throws {
        AgentUnderTest.noteTarget("gracefulShutdown")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let server = try RegistryUnderTest(agent, name: "consul-a", configuration: Self.fast)
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: Self.fast)
        let group = uniqueGroup("close")
        let url = serviceURL(port: 18_008, group: group)
        try await server.registry.register(url)
        try await server.registry.available(nil)
        let log = SubscriberLog()
        _ = try await client.registry.subscribe(url, listener: log.listener)
        #expect(await log.wait { $0 == [url] })
        await server.shutdown()
        #expect(try await agent.serviceEntries("motanrpc_\(group)").isEmpty)
        #expect(await log.wait { $0.isEmpty })
        await #expect(throws: RegistryError.closed) { try await server.registry.register(url) }
        await client.shutdown()
    }

    @Test("instances without a URL tag are rebuilt from protocol tag, address, port and id")
    func fallbackURL() async throws {
        AgentUnderTest.noteTarget("fallbackURL")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let client = try RegistryUnderTest(agent, name: "consul-b", configuration: Self.fast)
        let group = uniqueGroup("java")
        let body = """
            {"ID":"127.0.0.1:18009-com.example.Hello","Name":"motanrpc_\(group)","Tags":["protocol_motan"],
             "Address":"127.0.0.1","Port":18009,"Check":{"TTL":"30s","Status":"passing"}}
            """
        #expect(try await agent.request("PUT", "/v1/agent/service/register", body: body).status == 200)
        let found = try await client.registry.discover(serviceURL(port: 0, group: group))
        #expect(
            found == [
                MotanURL(
                    protocol: "motan", host: "127.0.0.1", port: 18009, path: "com.example.Hello",
                    parameters: ["group": group, "nodeType": "service"])
            ])
        _ = try await agent.request("PUT", "/v1/agent/service/deregister/127.0.0.1:18009-com.example.Hello")
        await client.shutdown()
    }
}
