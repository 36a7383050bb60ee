import Foundation
import Motan
import MotanHTTP
import MotanLoop
import MotanRegistry
import MotanTestSupport
import Prometheus
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Speaks to the admin endpoint over real HTTP on 127.0.0.1.
private struct AdminClient {
    let client: LoopHTTPClient
    let address: TCPAddress

    func send(_ method: String, _ target: String, body: [UInt8] = []) async throws -> LoopHTTPResponse {
        try await client.execute(
            LoopHTTPRequest(method: method, target: target, body: body), to: address, timeout: .seconds(5))
    }

    func json(_ method: String, _ target: String) async throws -> (Int, Any) {
        let response = try await send(method, target)
        #expect(response.headers["Content-Type"]?.hasPrefix("application/json") == true)
        return (response.status, try JSONSerialization.jsonObject(with: Data(response.body)))
    }
}

@Suite("Admin endpoint over HTTP")
struct AdminEndpointTests {
    @Test("switches, online/offline, registries, health, metrics; a flip reaches subscribers")
    func routes() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "admin")
        let switcher = Switcher()
        switcher.define("feature.motan.admin.disable", default: false)
        let registry = LocalRegistry(loop: group.loops[0])
        let announcer = ServiceAnnouncer(switcher: switcher, registries: [registry])
        let url = MotanURL(host: "127.0.0.1", port: 18123, path: "admin.Demo", parameters: ["group": "g"])
        try await announcer.register(url)
        let seen = Box<[Int]>([])
        _ = try await registry.subscribe(url) { servers in seen.mutate { $0.append(servers.count) } }

        let metrics = PrometheusCollectorRegistry()
        metrics.makeCounter(name: "motan_test_total").increment()
        let admin = try AdminEndpoint(
            group: group,
            sources: .init(
                switcher: switcher, registries: { [registry] },
                endpoints: {
                    [
                        EndpointReport(
                            address: "127.0.0.1:1", available: false, errorCount: 10, millisecondsSinceStateChange: 5)
                    ]
                }, metrics: metrics))
        let http = AdminClient(client: LoopHTTPClient(loop: group.loops[0]), address: admin.address)

        let (status, all) = try await http.json("GET", "/switcher")
        #expect(status == 200)
        let switches = try #require(all as? [String: Bool])
        #expect(switches[Switcher.heartbeatSwitchName] == false)
        #expect(switches["feature.motan.admin.disable"] == false)

        let (_, registries) = try await http.json("GET", "/registries")
        let entries = try #require(registries as? [[String: Any]])
        let services = try #require(entries.first?["services"] as? [[String: String]])
        #expect(services == [["url": url.description, "state": "unavailable"]])

        // POST /online: the switch flips, the registry moves the service, the subscriber sees it.
        let (onlineStatus, answer) = try await http.json("POST", "/online")
        #expect(onlineStatus == 200)
        #expect((answer as? [String: Any])?["changed"] as? Bool == true)
        #expect(switcher.isOnline)
        #expect(await eventually { seen.value.last == 1 })
        let (_, offline) = try await http.json("POST", "/switcher/feature.configserver.heartbeat?value=off")
        #expect((offline as? [String: Any])?["value"] as? Bool == false)
        #expect(await eventually { seen.value.last == 0 })

        let (_, endpoints) = try await http.json("GET", "/endpoints")
        let endpoint = try #require((endpoints as? [[String: Any]])?.first)
        #expect(endpoint["address"] as? String == "127.0.0.1:1")
        #expect(endpoint["available"] as? Bool == false)
        #expect(endpoint["errorCount"] as? Int == 10)

        let (_, health) = try await http.json("GET", "/healthz")
        #expect((health as? [String: String])?["status"] == "ok")

        let metricsText = try await http.send("GET", "/metrics").bodyText
        #expect(metricsText.contains("motan_test_total 1"))

        await http.client.shutdown()
        await admin.close()
        await announcer.stop()
        await registry.close()
        await group.shutdown()
    }

    @Test("unknown paths 404, wrong methods 405, bad values 400, garbage 400; it keeps serving")
    func badRequests() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "admin-bad")
        let switcher = Switcher()
        let admin = try AdminEndpoint(group: group, sources: .init(switcher: switcher))
        let http = AdminClient(client: LoopHTTPClient(loop: group.loops[0]), address: admin.address)

        let (notFound, body404) = try await http.json("GET", "/nope")
        #expect(notFound == 404)
        #expect((body404 as? [String: Any])?["error"] as? String != nil)
        let wrong = try await http.send("GET", "/online")
        #expect(wrong.status == 405)
        #expect(wrong.headers["Allow"] == "POST")
        #expect(try await http.send("DELETE", "/switcher").status == 405)
        let (badValue, _) = try await http.json("POST", "/switcher/x?value=maybe")
        #expect(badValue == 400)
        #expect(switcher.contains("x") == false)

        // Not HTTP at all, on a raw socket: answered 400 and closed.
        let raw = try rawExchange(port: admin.port, "\u{1}\u{2}garbage\r\n\r\n")
        #expect(raw.hasPrefix("HTTP/1.1 400"))
        // And the endpoint still serves.
        #expect(try await http.send("GET", "/healthz").status == 200)

        await http.client.shutdown()
        await admin.close()
        await group.shutdown()
    }

    @Test("/endpoints reports a cluster's endpoints: a dead server shows up unavailable with its error count")
    func endpointsOfClusters() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "admin-endpoints")
        // A port nobody listens on: bound and closed again.
        let probe = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in nil }
        let deadPort = probe.port
        await probe.close()
        let registry = try DirectRegistry(
            servers: [.init(host: "127.0.0.1", port: deadPort)], loop: group.loops[0])
        let cluster = Cluster(
            serviceURL: MotanURL(host: "127.0.0.1", port: 0, path: "admin.Dead"), registry: registry,
            loop: group.loops[0], configuration: .init(haStrategy: .failfast))
        try await cluster.start()
        #expect(await eventually { await cluster.status().endpoints.count == 1 })
        for _ in 0..<10 { _ = try? await cluster.call(method: "x") }
        let admin = try AdminEndpoint(
            group: group, sources: .init(endpoints: AdminEndpoint.endpoints(of: { [cluster] })))
        let http = AdminClient(client: LoopHTTPClient(loop: group.loops[0]), address: admin.address)
        let (status, body) = try await http.json("GET", "/endpoints")
        #expect(status == 200)
        let entry = try #require((body as? [[String: Any]])?.first)
        #expect(entry["address"] as? String == "127.0.0.1:\(deadPort)")
        #expect(entry["service"] as? String == "admin.Dead")
        #expect(entry["available"] as? Bool == false)
        #expect((entry["errorCount"] as? Int ?? 0) >= 10)
        await http.client.shutdown()
        await admin.close()
        await cluster.close()
        await group.shutdown()
    }

    @Test("refuses a non-loopback address unless explicitly allowed")
    func loopbackOnly() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "admin-bind")
        #expect(throws: AdminEndpointError.self) {
            _ = try AdminEndpoint(group: group, sources: .init(), configuration: .init(host: "0.0.0.0"))
        }
        let allowed = try AdminEndpoint(
            group: group, sources: .init(), configuration: .init(host: "0.0.0.0", allowNonLoopback: true))
        #expect(allowed.port > 0)
        await allowed.close()
        await group.shutdown()
    }
}

/// Sends `text` on a plain socket and reads until the server closes (bounded by a 5 s receive timeout).
private func rawExchange(port: Int, _ text: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
    _ = text.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n <= 0 { break }
        received += chunk[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}
