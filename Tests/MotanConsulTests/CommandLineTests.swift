import Foundation
import MotanConsul
import MotanTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("motan serve and motan call over Consul")
struct ConsulCommandLineTests {
    static let path = "com.weibo.motan.demo.service.MotanDemoService"

    @Test("serve registers a critical check; the switch passes it and call finds the server; SIGTERM deregisters")
    func serveAndCall() async throws {
        AgentUnderTest.noteTarget("serveAndCall")
        let agent = try AgentUnderTest()
        defer { agent.shutdown() }
        let group = uniqueGroup("cli")
        let server = try MotanChild([
            "serve", "--port", "0", "--registry", agent.registryAddress, "--group", group, "--admin-port", "0",
            "--propagation-wait", "100",
        ])
        defer { server.terminate() }
        let port = try await server.port(afterLineStartingWith: "listening on ")
        let admin = try await server.port(afterLineStartingWith: "admin endpoint on ")
        let service = "motanrpc_\(group)"
        let checkID = "service:127.0.0.1:\(port)-\(Self.path)"
        #expect(try await agent.checkStatus(service: service, checkID: checkID) == "critical")

        let call = ["call", "--registry", agent.registryAddress, "--group", group, Self.path, "hello", "consul"]
        let (refused, refusal) = try await MotanChild.run(call)
        #expect(refused == 1)
        #expect(refusal.contains("no provider"), "\(refusal)")

        let (switched, _) = try await MotanChild.run([
            "switch", "--admin", "127.0.0.1:\(admin)", "feature.configserver.heartbeat", "on",
        ])
        #expect(switched == 0)
        #expect(
            try await eventually(upTo: .seconds(10)) {
                try await agent.checkStatus(service: service, checkID: checkID) == "passing"
            })
        let (status, answer) = try await MotanChild.run(call)
        #expect(status == 0, "\(answer)")
        #expect(answer.split(separator: "\n").last == "hello consul")

        server.signal(SIGTERM)
        #expect(await server.exitStatus(within: .seconds(15)) == 0, "\(server.output)")
        #expect(try await agent.serviceEntries(service).isEmpty)
    }
}
