import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanZooKeeper

@Suite("ZooKeeper client against a real server", .serialized)
struct ClientTests {
    @Test("create, getData, setData, getChildren, exists, delete")
    func basicOperations() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let client = try await rig.client(server.connectString)
        let root = uniqueRoot("ops")
        #expect(try await client.create(root, data: Array("hello".utf8)) == root)
        let (data, stat) = try await client.getData(root)
        #expect(data == Array("hello".utf8))
        #expect(stat.version == 0 && stat.ephemeralOwner == 0 && stat.dataLength == 5)
        let updated = try await client.setData(root, data: Array("world".utf8), version: 0)
        #expect(updated.version == 1)
        #expect(try await client.getData(root).data == Array("world".utf8))

        try await client.create(root + "/a/b/c", data: [1, 2, 3], createParents: true)
        try await client.create(root + "/a/e", mode: .ephemeral)
        #expect(Set(try await client.getChildren(root + "/a").children) == ["b", "e"])
        let ephemeral = try #require(try await client.exists(root + "/a/e"))
        #expect(ephemeral.ephemeralOwner == client.session?.id)
        #expect(try await client.exists(root + "/missing") == nil)

        let sequential = try await client.create(root + "/seq-", mode: .persistentSequential)
        #expect(sequential.hasPrefix(root + "/seq-") && sequential.count == root.count + 5 + 10)

        try await client.delete(root + "/a/b/c")
        #expect(try await client.exists(root + "/a/b/c") == nil)
        await client.close()
    }

    @Test("server error codes arrive as typed errors")
    func typedErrors() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let client = try await rig.client(server.connectString)
        let root = uniqueRoot("errors")
        try await client.create(root)
        try await client.create(root + "/child")
        await #expect(throws: ZooKeeperError.nodeExists) { try await client.create(root) }
        await #expect(throws: ZooKeeperError.noNode) { try await client.getData(root + "/nope") }
        await #expect(throws: ZooKeeperError.noNode) { try await client.create(root + "/x/y") }
        await #expect(throws: ZooKeeperError.notEmpty) { try await client.delete(root) }
        await #expect(throws: ZooKeeperError.badVersion) { try await client.setData(root, data: [], version: 7) }
        await #expect(throws: ZooKeeperError.badVersion) { try await client.delete(root + "/child", version: 3) }
        try await client.create(root + "/eph", mode: .ephemeral)
        await #expect(throws: ZooKeeperError.noChildrenForEphemerals) { try await client.create(root + "/eph/x") }
        await #expect(throws: ZooKeeperError.badArguments) { try await client.create("relative") }
        await #expect(throws: ZooKeeperError.badArguments) { try await client.getData(root + "/") }
        // The session is still fine after all of that.
        #expect(try await client.exists(root) != nil)
        #expect(ZooKeeperError(code: -101) == .noNode && ZooKeeperError.noNode.code == -101)
        #expect(ZooKeeperError(code: -999) == .unknown(-999))
        await client.close()
        await #expect(throws: ZooKeeperError.closed) { try await client.exists(root) }
    }

    @Test("one-shot watches: data, exists on a missing node, children, deletion")
    func watches() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let watcherClient = try await rig.client(server.connectString)
        let writer = try await rig.client(server.connectString)
        let root = uniqueRoot("watch")
        try await writer.create(root)
        let events = Box<[ZooKeeperWatchEvent]>([])
        let record: ZooKeeperWatcher = { event in events.mutate { $0.append(event) } }

        #expect(try await watcherClient.exists(root + "/n", watcher: record) == nil)
        _ = try await watcherClient.getChildren(root, watcher: record)
        try await writer.create(root + "/n", data: [1])
        #expect(await eventually { events.value.count == 2 })
        #expect(Set(events.value.map(\.type)) == [.nodeCreated, .nodeChildrenChanged])
        #expect(events.value.allSatisfy { $0.state == .syncConnected })

        events.mutate { $0.removeAll() }
        _ = try await watcherClient.getData(root + "/n", watcher: record)
        try await writer.setData(root + "/n", data: [2])
        #expect(await eventually { events.value.count == 1 })
        #expect(
            events.value.first == ZooKeeperWatchEvent(type: .nodeDataChanged, state: .syncConnected, path: root + "/n"))
        // One-shot: a second change without a new read is not heard.
        try await writer.setData(root + "/n", data: [3])
        _ = try await watcherClient.getData(root + "/n", watcher: record)
        try await writer.delete(root + "/n")
        #expect(await eventually { events.value.count == 2 })
        #expect(events.value.last?.type == .nodeDeleted)
        #expect(events.value.count == 2)

        // A session that closes makes its ephemeral node vanish at once for others.
        let owner = try await rig.client(server.connectString)
        try await owner.create(root + "/eph", mode: .ephemeral)
        events.mutate { $0.removeAll() }
        _ = try await watcherClient.exists(root + "/eph", watcher: record)
        await owner.close()
        #expect(await eventually(timeout: .seconds(2)) { events.value.count == 1 })
        #expect(events.value.first?.type == .nodeDeleted)
        await watcherClient.close()
        await writer.close()
    }

    @Test("callback forms run on the loop; session events stream")
    func callbacksAndSessionEvents() async throws {
        guard let server = try await SharedZooKeeper.shared.get() else { return }
        let rig = TestLoop()
        defer { rig.shutdown() }
        let client = try ZooKeeperClient(connectString: server.connectString, loop: rig.loop)
        var iterator = client.sessionEvents().makeAsyncIterator()
        guard case .connected(let session, _, let isNew) = await iterator.next() else {
            Issue.record("no connected event")
            return
        }
        #expect(isNew && session.id != 0 && session.password.count == 16)
        let root = uniqueRoot("cb")
        let result = Box<String?>(nil)
        rig.loop.execute {
            client.create(root, data: [9]) { created in
                rig.loop.preconditionInEventLoop()
                client.getData(root) { read in
                    result.mutate { $0 = "\((try? created.get()) ?? "-") \((try? read.get().data) ?? [])" }
                }
            }
        }
        #expect(await eventually { result.value != nil })
        #expect(result.value == "\(root) [9]")
        await client.close()
        #expect(await iterator.next() == .closed)
        #expect(await iterator.next() == nil)
    }
}
