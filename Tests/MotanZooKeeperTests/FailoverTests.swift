import MotanLoop
import MotanRegistry
import MotanTestSupport
import Testing

@testable import MotanZooKeeper

#if canImport(Glibc)
    import Glibc
#endif

/// Servers that die and come back; each test runs its own server(s).
@Suite("ZooKeeper registry across server failures", .serialized)
struct FailoverTests {
    @Test("server restart within the session timeout: the session survives, watches still fire")
    func serverRestart() async throws {
        guard let server = try ZooKeeperTestServer.start() else { return }
        defer { server.stop() }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "restart"
        let registry = registryURL(server.connectString, sessionMilliseconds: 20_000)
        let provider = try ZooKeeperRegistry(url: registry, loop: rig.loop)
        let consumer = try ZooKeeperRegistry(url: registry, loop: rig.loop)
        let url = serviceURL(group: group)
        try await provider.register(url)
        try await provider.available(nil)
        let seen = ServerLists()
        _ = try await consumer.subscribe(serviceURL(group: group, port: 0), listener: seen.listener)
        #expect(await eventually { seen.last == [url] })
        let session = try #require(provider.client.session)

        server.kill()
        #expect(await eventually { !provider.client.isConnected && !consumer.client.isConnected })
        try server.restart()
        #expect(await eventually(timeout: .seconds(15)) { provider.client.isConnected && consumer.client.isConnected })
        #expect(provider.client.session?.id == session.id)

        let observer = try await rig.client(server.connectString)
        let node = try await observer.exists("/motan/\(group)/com.example.Hello/server/127.0.0.1:8002")
        #expect(node?.ephemeralOwner == session.id)
        // The consumer's child watch came back through SetWatches.
        let before = seen.lists.value.count
        try await provider.unavailable(nil)
        #expect(await eventually { seen.lists.value.count > before && seen.last == [] })
        await observer.close()
        await provider.close()
        await consumer.close()
    }

    @Test("three-node ensemble: killing the connected server, then the leader, keeps session and nodes")
    func ensembleFailover() async throws {
        guard let ensemble = try ZooKeeperTestEnsemble.start() else { return }
        defer { ensemble.stop() }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "ensemble"
        let registry = registryURL(ensemble.connectString, sessionMilliseconds: 10_000)
        let provider = try ZooKeeperRegistry(url: registry, loop: rig.loop)
        let consumer = try ZooKeeperRegistry(url: registry, loop: rig.loop)
        let url = serviceURL(group: group)
        try await provider.register(url)
        try await provider.available(nil)
        let seen = ServerLists()
        _ = try await consumer.subscribe(serviceURL(group: group, port: 0), listener: seen.listener)
        #expect(await eventually { seen.last == [url] })
        let session = try #require(provider.client.session)

        func killAndCheck(_ n: Int) async throws {
            let before = provider.client.connectedServer
            try ensemble.kill(n)
            #expect(
                await eventually(timeout: .seconds(20)) {
                    provider.client.isConnected && consumer.client.isConnected
                        && (before != "127.0.0.1:\(ensemble.base + n)" || provider.client.connectedServer != before)
                })
            #expect(provider.client.session?.id == session.id)
            let survivors = (1...3).filter { $0 != n }.map { "127.0.0.1:\(ensemble.base + $0)" }
            let observer = try await rig.client(survivors.joined(separator: ","))
            let node = try await observer.exists("/motan/\(group)/com.example.Hello/server/127.0.0.1:8002")
            #expect(node?.ephemeralOwner == session.id)
            await observer.close()
            try await provider.unavailable(nil)
            #expect(await eventually { seen.last == [] })
            try await provider.available(nil)
            #expect(await eventually { seen.last == [url] })
        }

        let connected = try #require(provider.client.connectedServer)
        let first = ensemble.node(port: Int(connected.split(separator: ":").last!)!)
        try await killAndCheck(first)

        try ensemble.start(first)
        #expect(await eventually(timeout: .seconds(20)) { ensemble.mode(first) == "follower" })
        let leader = try #require((1...3).first { ensemble.mode($0) == "leader" })
        try await killAndCheck(leader)

        await provider.close()
        await consumer.close()
    }
}

@Suite("ZooKeeper session keeping", .serialized)
struct SessionKeepingTests {
    @Test("an idle client keeps a short session alive with pings")
    func pingsKeepIdleSessionAlive() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        // Idle for two whole timeouts: without pings the client would give the connection up
        // after two thirds of one, and the server would expire the session after one.
        let client = try await rig.client(server.connectString, timeout: .milliseconds(2000))
        let session = try #require(client.session)
        #expect(session.timeout == .milliseconds(2000))
        let events = Box<[ZooKeeperSessionEvent]>([])
        let listening = Box(false)
        rig.loop.execute {
            client.addSessionListener { event in events.mutate { $0.append(event) } }
            listening.mutate { $0 = true }
        }
        #expect(await eventually { listening.value })
        try await Task.sleep(for: .seconds(4))
        #expect(events.value.isEmpty, "\(events.value)")
        #expect(client.session?.id == session.id)
        #expect(try await client.exists("/") != nil)
        await client.close()
    }

    @Test("a hung server (SIGSTOP): the client declares the connection dead, then recovers on SIGCONT")
    func hungServer() async throws {
        guard let server = try ZooKeeperTestServer.start() else { return }
        defer { server.stop() }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let provider = try ZooKeeperRegistry(
            url: registryURL(server.connectString, sessionMilliseconds: 4000), loop: rig.loop)
        let url = serviceURL(group: "hung")
        try await provider.register(url)
        try await provider.available(nil)
        let events = Box<[ZooKeeperSessionEvent]>([])
        let listening = Box(false)
        rig.loop.execute {
            provider.client.addSessionListener { event in events.mutate { $0.append(event) } }
            listening.mutate { $0 = true }
        }
        #expect(await eventually { listening.value })

        server.signal(SIGSTOP)
        // Nothing arrives any more: after two thirds of the timeout the client gives up on the socket.
        let disconnected = await eventually(timeout: .seconds(10)) { events.value.contains(.disconnected) }
        server.signal(SIGCONT)
        #expect(disconnected)
        #expect(await eventually(timeout: .seconds(15)) { provider.client.isConnected })
        // Resumed or (if the freeze outlived it) a new session: either way the node is there.
        let observer = try await rig.client(server.connectString)
        #expect(
            await eventually {
                (try? await observer.exists("/motan/hung/com.example.Hello/server/127.0.0.1:8002"))??
                    .ephemeralOwner == provider.client.session?.id
            })
        await observer.close()
        await provider.close()
    }
}
