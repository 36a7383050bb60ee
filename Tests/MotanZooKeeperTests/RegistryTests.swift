import MotanLoop
import MotanRegistry
import MotanTestSupport
import Testing

@testable import MotanZooKeeper

func serviceURL(group: String, port: Int = 8002, path: String = "com.example.Hello") -> MotanURL {
    MotanURL(
        protocol: "motan2", host: "127.0.0.1", port: port, path: path,
        parameters: ["group": group, "nodeType": "service", "serialization": "simple"])
}

func registryURL(_ connectString: String, sessionMilliseconds: Int = 10_000) -> MotanURL {
    MotanURL(
        protocol: "zookeeper", host: "127.0.0.1", port: 0, path: "",
        parameters: ["address": connectString, "registrySessionTimeout": "\(sessionMilliseconds)"])
}

/// Collects every list a subscription hears.
final class ServerLists: Sendable {
    let lists = Box<[[MotanURL]]>([])
    var listener: RegistryListener { { list in self.lists.mutate { $0.append(list) } } }
    var last: [MotanURL]? { lists.value.last }
    var lastHosts: [String]? { last?.map(\.hostPort) }
}

@Suite("ZooKeeper registry against a real server", .serialized)
struct RegistryTests {
    @Test("register → unavailableServer; available → server, seen by another client; unavailable; unregister")
    func lifecycle() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "g\(UInt32.random(in: 0...UInt32.max))"
        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let consumer = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let observer = try await rig.client(server.connectString)
        let url = serviceURL(group: group)
        let base = "/motan/\(group)/com.example.Hello"

        try await provider.register(url)
        let (data, stat) = try await observer.getData("\(base)/unavailableServer/127.0.0.1:8002")
        #expect(MotanURL(parsing: String(decoding: data, as: UTF8.self)) == url)
        #expect(String(decoding: data, as: UTF8.self) == url.description)
        #expect(stat.ephemeralOwner == provider.client.session?.id)
        #expect(try await observer.exists("\(base)/server/127.0.0.1:8002") == nil)
        #expect(await provider.registrations() == [Registration(url: url, state: .unavailable)])

        let seen = ServerLists()
        let subscriber = serviceURL(group: group, port: 0)
        let subscription = try await consumer.subscribe(subscriber, listener: seen.listener)
        #expect(await eventually { seen.last == [] })
        let clientNode = try await observer.getChildren("\(base)/client").children
        #expect(clientNode == ["127.0.0.1"])

        try await provider.available(nil)
        #expect(await eventually { seen.last == [url] })
        #expect(try await observer.exists("\(base)/unavailableServer/127.0.0.1:8002") == nil)
        #expect(try await observer.exists("\(base)/server/127.0.0.1:8002") != nil)
        #expect(try await consumer.discover(subscriber) == [url])

        try await provider.unavailable(url)
        #expect(await eventually { seen.last == [] })
        #expect(try await observer.exists("\(base)/unavailableServer/127.0.0.1:8002") != nil)

        try await provider.available(url)
        #expect(await eventually { seen.last == [url] })
        try await provider.unregister(url)
        #expect(await eventually { seen.last == [] })
        #expect(try await observer.getChildren("\(base)/server").children.isEmpty)
        #expect(try await observer.getChildren("\(base)/unavailableServer").children.isEmpty)
        #expect(await provider.registrations().isEmpty)
        await #expect(throws: RegistryError.notRegistered(url.description)) { try await provider.available(url) }

        await consumer.unsubscribe(subscription)
        #expect(try await observer.getChildren("\(base)/client").children.isEmpty)
        await provider.close()
        await consumer.close()
        await observer.close()
    }

    @Test("a subscriber that starts before any server finds servers registered later")
    func subscribeBeforeServer() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "early\(UInt32.random(in: 0...UInt32.max))"
        let consumer = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let seen = ServerLists()
        _ = try await consumer.subscribe(serviceURL(group: group, port: 0), listener: seen.listener)
        #expect(await eventually { seen.last == [] })

        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let first = serviceURL(group: group, port: 9001)
        let second = serviceURL(group: group, port: 9002)
        try await provider.register(first)
        try await provider.register(second)
        try await provider.available(nil)
        #expect(await eventually { seen.lastHosts == ["127.0.0.1:9001", "127.0.0.1:9002"] })
        await provider.close()
        // close() deletes the nodes: the subscriber hears the empty list.
        #expect(await eventually { seen.last == [] })
        await consumer.close()
    }

    @Test("server nodes written by Java (serialized String) and with unreadable data are read")
    func foreignNodeData() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "java\(UInt32.random(in: 0...UInt32.max))"
        let writer = try await rig.client(server.connectString)
        let base = "/motan/\(group)/a.B/server"
        let text = "motan://1.2.3.4:8001/a.B?group=\(group)&"
        let serialized: [UInt8] = [0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, UInt8(text.utf8.count)] + Array(text.utf8)
        try await writer.create(base + "/1.2.3.4:8001", data: serialized, mode: .ephemeral, createParents: true)
        try await writer.create(base + "/5.6.7.8:9000", data: [0xAC, 0xED, 0x00, 0x05, 0x73], mode: .ephemeral)
        let consumer = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let subscriber = serviceURL(group: group, port: 0, path: "a.B")
        let servers = try await consumer.discover(subscriber)
        #expect(servers.count == 2)
        #expect(
            servers.first
                == MotanURL(protocol: "motan", host: "1.2.3.4", port: 8001, path: "a.B", parameters: ["group": group]))
        var fallback = subscriber
        fallback.host = "5.6.7.8"
        fallback.port = 9000
        #expect(servers.last == fallback)
        await consumer.close()
        await writer.close()
    }

    @Test("versions motan-go would refuse are not written")
    func versionGuard() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        var url = serviceURL(group: "v")
        url.parameters["version"] = "2.0"
        await #expect(throws: RegistryError.self) { try await provider.register(url) }
        url.parameters["version"] = "1.0"
        try await provider.register(url)
        await provider.close()
    }

    @Test("session expiry: nodes come back and subscribers are notified, the application doing nothing")
    func sessionExpiry() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "exp\(UInt32.random(in: 0...UInt32.max))"
        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let consumer = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let url = serviceURL(group: group)
        try await provider.register(url)
        try await provider.available(nil)
        // The provider subscribes too: its own watches must come back after the expiry.
        let providerSeen = ServerLists()
        _ = try await provider.subscribe(
            serviceURL(group: group, port: 0, path: "other.Service"), listener: providerSeen.listener)
        let seen = ServerLists()
        _ = try await consumer.subscribe(serviceURL(group: group, port: 0), listener: seen.listener)
        #expect(await eventually { seen.last == [url] && providerSeen.last == [] })

        let old = try #require(provider.client.session)
        let heard = seen.lists.value.count
        try await expire(provider.client, server.connectString, rig.loop)

        // Gone with the session (subscribers hear it; usually as an empty list, unless the node
        // is back before they read), then back under the new one.
        #expect(await eventually { seen.lists.value.count > heard && seen.last == [url] })
        let observer = try await rig.client(server.connectString)
        let node = try #require(try await observer.exists("/motan/\(group)/com.example.Hello/server/127.0.0.1:8002"))
        let new = try #require(provider.client.session)
        #expect(new.id != old.id && node.ephemeralOwner == new.id)
        #expect(try await observer.exists("/motan/\(group)/com.example.Hello/client/127.0.0.1") != nil)

        // The provider's re-armed watch hears a server of the other service.
        let other = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        try await other.register(serviceURL(group: group, port: 7000, path: "other.Service"))
        try await other.available(nil)
        #expect(await eventually { providerSeen.lastHosts == ["127.0.0.1:7000"] })
        await other.close()
        await provider.close()
        await consumer.close()
        await observer.close()
    }

    @Test("a node left by another session is replaced (ephemeralOwner checked)")
    func staleNodeReplaced() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "stale\(UInt32.random(in: 0...UInt32.max))"
        let url = serviceURL(group: group)
        let path = "/motan/\(group)/com.example.Hello/unavailableServer/127.0.0.1:8002"
        let leftover = try await rig.client(server.connectString)
        try await leftover.create(path, data: Array("stale".utf8), mode: .ephemeral, createParents: true)
        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        try await provider.register(url)
        let (data, stat) = try await leftover.getData(path)
        #expect(stat.ephemeralOwner == provider.client.session?.id)
        #expect(String(decoding: data, as: UTF8.self) == url.description)
        await provider.close()
        await leftover.close()
    }

    @Test("the group's command node is read and watched (not applied)")
    func commandWatched() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "cmd\(UInt32.random(in: 0...UInt32.max))"
        let consumer = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        _ = try await consumer.subscribe(serviceURL(group: group, port: 0), listener: { _ in })
        #expect(await consumer.command(group: group) == nil)
        let writer = try await rig.client(server.connectString)
        let path = "/motan/\(group)/command"
        try await writer.create(path, data: Array("{\"a\":1}".utf8), createParents: true)
        #expect(await eventually { await consumer.command(group: group) == "{\"a\":1}" })
        try await writer.setData(path, data: Array("{\"a\":2}".utf8))
        #expect(await eventually { await consumer.command(group: group) == "{\"a\":2}" })
        try await writer.delete(path)
        #expect(await eventually { await consumer.command(group: group) == nil })
        try await writer.create(path, data: Array("{}".utf8))
        #expect(await eventually { await consumer.command(group: group) == "{}" })
        await consumer.close()
        await writer.close()
    }

    @Test("close() at shutdown: the nodes disappear at once for other clients")
    func closeDeletesNodes() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let group = "close\(UInt32.random(in: 0...UInt32.max))"
        let provider = try ZooKeeperRegistry(url: registryURL(server.connectString), loop: rig.loop)
        let url = serviceURL(group: group)
        try await provider.register(url)
        try await provider.available(nil)
        let observer = try await rig.client(server.connectString)
        let path = "/motan/\(group)/com.example.Hello/server/127.0.0.1:8002"
        let deleted = Box(false)
        #expect(try await observer.exists(path) { event in deleted.mutate { $0 = event.type == .nodeDeleted } } != nil)
        await provider.close()
        #expect(try await observer.exists(path) == nil)
        #expect(await eventually { deleted.value })
        await #expect(throws: RegistryError.closed) { try await provider.register(url) }
        await observer.close()
    }
}

/// Forces expiry of `owner`'s session the deterministic way (spec: zookeeper-protocol.md §9,
/// "steal and close"): a second connection with the same id and password takes the session over
/// and closes it. Should the owner win the session back first, the theft is tried again.
func expire(_ owner: ZooKeeperClient, _ connectString: String, _ loop: UVEventLoop) async throws {
    let old = try #require(owner.session)
    var configuration = ZooKeeperClient.Configuration()
    configuration.resumeSession = old
    configuration.sessionTimeout = old.timeout
    for _ in 0..<3 {
        let thief = try ZooKeeperClient(connectString: connectString, loop: loop, configuration: configuration)
        await thief.close()
        if await eventually(timeout: .seconds(5), { owner.session.map { $0.id != old.id } ?? false }) { return }
    }
    Issue.record("could not expire session \(hex(old.id))")
}
