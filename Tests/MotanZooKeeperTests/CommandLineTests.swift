import Foundation
import MotanTestSupport
import MotanZooKeeper
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("motan serve and motan call over a real ZooKeeper")
struct ZooKeeperCommandLineTests {
    static let service = "com.weibo.motan.demo.service.MotanDemoService"

    @Test("serve registers unavailable; the switch makes call find it; SIGTERM removes the node and exits 0")
    func serveAndCall() async throws {
        guard let zk = try await SharedZooKeeper.shared.get() else { return }
        let registry = "zookeeper://\(zk.connectString)"
        let group = "cli\(UInt32.random(in: 0...UInt32.max))"
        let server = try MotanChild([
            "serve", "--port", "0", "--registry", registry, "--group", group, "--admin-port", "0",
            "--propagation-wait", "100",
        ])
        defer { server.terminate() }
        let port = try await server.port(afterLineStartingWith: "listening on ")
        let admin = try await server.port(afterLineStartingWith: "admin endpoint on ")
        let call = ["call", "--registry", registry, "--group", group, Self.service, "hello", "zk"]

        let rig = TestLoop()
        defer { rig.shutdown() }
        let observer = try await rig.client(zk.connectString)
        let base = "/motan/\(group)/\(Self.service)"
        #expect(try await observer.getChildren("\(base)/unavailableServer").children == ["127.0.0.1:\(port)"])

        let (refused, refusal) = try await MotanChild.run(call)
        #expect(refused == 1)
        #expect(refusal.contains("no provider"), "\(refusal)")

        let (switched, _) = try await MotanChild.run([
            "switch", "--admin", "127.0.0.1:\(admin)", "feature.configserver.heartbeat", "on",
        ])
        #expect(switched == 0)
        // The switch answers at once; the registry moves the node right after.
        #expect(
            await eventually {
                (try? await observer.getChildren("\(base)/server").children) == ["127.0.0.1:\(port)"]
            })
        let (status, answer) = try await MotanChild.run(call)
        #expect(status == 0, "\(answer)")
        #expect(answer.split(separator: "\n").last == "hello zk")

        server.signal(SIGTERM)
        #expect(await server.exitStatus(within: .seconds(15)) == 0, "\(server.output)")
        #expect(try await observer.getChildren("\(base)/server").children.isEmpty)
        #expect(try await observer.getChildren("\(base)/unavailableServer").children.isEmpty)
        await observer.close()
    }
}
