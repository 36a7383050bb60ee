import Foundation
import MotanRegistry
import Testing

@testable import MotanZooKeeper

private func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

private func request(xid: Int32, op: Int32, body: [UInt8] = []) -> [UInt8] {
    var w = JuteWriter()
    w.int(xid)
    w.int(op)
    w.raw(body)
    return w.framed
}

/// The worked examples of zookeeper-protocol.md §2 and §4.1, byte for byte.
@Suite("Jute encoding: the spec's worked examples")
struct JuteTests {
    @Test("ConnectRequest for a new session asking for 30 000 ms")
    func connectRequest() {
        var w = JuteWriter()
        w.int(0)
        w.long(0)
        w.int(30_000)
        w.long(0)
        w.buffer([UInt8](repeating: 0, count: 16))
        w.bool(false)
        #expect(
            w.framed
                == hexBytes(
                    "0000002d 00000000 0000000000000000 00007530 0000000000000000 00000010 00000000000000000000000000000000 00"
                ))
    }

    @Test("open ACL, create, getChildren2, delete, ping, closeSession, SetWatches")
    func requests() {
        var acl = JuteWriter()
        acl.acls(ZooKeeperACL.openUnsafe)
        #expect(acl.bytes == hexBytes("00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65"))

        let path = "/motan/g1/com.example.Hello/server/127.0.0.1:8002"
        let data = Array("motan2://127.0.0.1:8002/com.example.Hello?group=g1".utf8)
        let create = request(
            xid: 5, op: OpCode.create, body: ZooKeeperClient.createBody(path, data, .ephemeral, ZooKeeperACL.openUnsafe)
        )
        #expect(create.count == 4 + 146)
        #expect(Array(create[0..<12]) == hexBytes("00000092 00000005 00000001"))
        #expect(Array(create.suffix(4)) == hexBytes("00000001"))

        let children = request(
            xid: 6, op: OpCode.getChildren2,
            body: ZooKeeperClient.pathBody("/motan/g1/com.example.Hello/server", watch: true))
        #expect(Array(children[0..<16]) == hexBytes("0000002f 00000006 0000000c 00000022"))
        #expect(children.last == 1 && children.count == 4 + 0x2f)

        #expect(
            request(xid: 8, op: OpCode.delete, body: ZooKeeperClient.pathVersionBody("/e", nil, -1))
                == hexBytes("00000012 00000008 00000002 00000002 2f65 ffffffff"))
        #expect(request(xid: Xid.ping, op: OpCode.ping) == hexBytes("00000008 fffffffe 0000000b"))
        #expect(request(xid: 7, op: OpCode.closeSession) == hexBytes("00000008 00000007 fffffff5"))

        var setWatches = JuteWriter()
        setWatches.int(Xid.setWatches)
        setWatches.int(OpCode.setWatches)
        setWatches.long(0x25)
        setWatches.strings([])
        setWatches.strings([])
        setWatches.strings(["/a"])
        #expect(
            setWatches.framed
                == hexBytes("00000022 fffffff8 00000065 0000000000000025 00000000 00000000 00000001 00000002 2f61"))
    }

    @Test("a watch notification decodes; truncated records are marshalling errors")
    func decoding() throws {
        var r = JuteReader(
            hexBytes("ffffffff ffffffffffffffff 00000000 00000004 00000003 0000000c 2f6d6f74616e2f672f737663"))
        #expect(try r.int() == -1)
        #expect(try r.long() == -1)
        #expect(try r.int() == 0)
        #expect(try r.int() == ZooKeeperEventType.nodeChildrenChanged.rawValue)
        #expect(try r.int() == ZooKeeperKeeperState.syncConnected.rawValue)
        #expect(try r.string() == "/motan/g/svc")
        #expect(r.remaining == 0)
        var short = JuteReader([0, 0, 0, 9, 1, 2])
        #expect(throws: ZooKeeperError.marshallingError) { try short.buffer() }
        var lying = JuteReader([0x7f, 0xff, 0xff, 0xff])
        #expect(throws: ZooKeeperError.marshallingError) { try lying.strings() }
        var stat = JuteReader([UInt8](repeating: 0, count: 67))
        #expect(throws: ZooKeeperError.marshallingError) { try stat.stat() }
    }

    @Test("node data: plain text and Java-serialized Strings (the spec's vector)")
    func nodeData() {
        let java = hexBytes("aced00057400216d6f74616e3a2f2f312e322e332e343a383030312f612e423f67726f75703d6726")
        #expect(MotanNodeData.text(java) == "motan://1.2.3.4:8001/a.B?group=g&")
        var long: [UInt8] = [0xAC, 0xED, 0x00, 0x05, 0x7C, 0, 0, 0, 0, 0, 0, 0, 3]
        long += Array("abc".utf8)
        #expect(MotanNodeData.text(long) == "abc")
        #expect(MotanNodeData.text([0xAC, 0xED, 0x00, 0x05, 0x74, 0x00, 0x09, 0x61]) == nil)
        #expect(MotanNodeData.text(Array("motan2://h:1/p".utf8)) == "motan2://h:1/p")
        let subscriber = MotanURL(host: "127.0.0.1", port: 0, path: "p", parameters: ["group": "g"])
        let fallback = MotanNodeData.serverURL(child: "10.0.0.1", data: nil, subscriber: subscriber)
        #expect(fallback.host == "10.0.0.1" && fallback.port == 80 && fallback.path == "p")
    }

    @Test("SetWatches re-arms every watched path in packets of at most 128 KB")
    func setWatchesBatches() throws {
        var table = WatchTable()
        let watcher: ZooKeeperWatcher = { _ in }
        let paths = (0..<3000).map { "/" + String(repeating: "p", count: 95) + String(format: "%04d", $0) }
        for path in paths { table.add(.child, path: path, watcher: watcher, error: nil) }
        table.add(.exist, path: "/missing", watcher: watcher, error: .noNode)
        table.add(.data, path: "/failed", watcher: watcher, error: .connectionLoss)
        let packets = table.setWatchesPackets(relativeZxid: 7)
        #expect(packets.count == 3)
        var seen: [String] = []
        for packet in packets {
            #expect(packet.count <= 128 * 1024 + 64)
            var r = JuteReader(packet, offset: 4)
            #expect(try r.int() == Xid.setWatches)
            #expect(try r.int() == OpCode.setWatches)
            #expect(try r.long() == 7)
            seen += try r.strings() + r.strings() + r.strings()
        }
        #expect(Set(seen) == Set(paths + ["/missing"]))
        #expect(
            table.take(for: ZooKeeperWatchEvent(type: .nodeCreated, state: .syncConnected, path: "/missing")).count == 1
        )
        #expect(table.takeAll().count == 3000)
        #expect(table.isEmpty)
    }
}
