import Logging
import MetricsTestKit
import Motan
import MotanRegistry
import MotanTestSupport
import MotanTransport

enum TestService {
    static let path = "test.EchoService"
    static let group = "g"

    static func url(port: Int) -> MotanURL {
        MotanURL(host: "127.0.0.1", port: port, path: path, parameters: ["group": group, "nodeType": "service"])
    }

    static let subscriber = MotanURL(
        host: "127.0.0.1", port: 0, path: path, parameters: ["group": group, "nodeType": "referer"])
}

/// One real server on its own loop, which can be closed and bound again on the same port.
final class TestServer: @unchecked Sendable {
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "test-server")
    let calls = Box(0)
    let held = Box<[PendingResponse]>([])
    private let services: ServiceRegistry
    private let endpoint: Box<ServerEndpoint?>
    let port: Int

    init() throws {
        var services = ServiceRegistry()
        let calls = self.calls
        let held = self.held
        services.handle(service: TestService.path, method: "echo") { request, responder in
            calls.mutate { $0 += 1 }
            responder.respond(request.arguments.first ?? .null)
        }
        services.handle(service: TestService.path, method: "hold") { _, responder in
            calls.mutate { $0 += 1 }
            let pending = responder.detach()
            held.mutate { $0.append(pending) }
        }
        services.handle(service: TestService.path, method: "businessError") { _, responder in
            calls.mutate { $0 += 1 }
            responder.fail(MotanErrorInfo(errcode: 30001, errmsg: "business says no", errtype: 2))
        }
        self.services = services
        let server = try ServerEndpoint(group: group, services: services)
        port = server.port
        endpoint = Box(server)
    }

    var url: MotanURL { TestService.url(port: port) }

    /// Stops listening and drops every connection; the port stays free for `rebind()`.
    func close() {
        endpoint.mutate { $0 }?.close()
        endpoint.mutate { $0 = nil }
    }

    func rebind() throws {
        let server = try ServerEndpoint(group: group, services: services, configuration: .init(port: port))
        endpoint.mutate { $0 = server }
    }

    func releaseHeld() {
        let responders = held.mutate { all -> [PendingResponse] in
            defer { all.removeAll() }
            return all
        }
        for responder in responders { responder.complete(with: .success("released")) }
    }

    func shutdown() {
        close()
        group.syncShutdown()
    }
}

/// Servers, a local registry and a client loop whose heartbeat manager probes every 20 ms.
final class ClusterRig: @unchecked Sendable {
    let loop = UVEventLoop(name: "cluster-client")
    let registry: LocalRegistry
    let servers: [TestServer]
    let metrics = TestMetrics()
    let capture = LogCapture()
    private let clusters = Box<[Cluster]>([])

    init(servers count: Int) throws {
        _ = HeartbeatManager.of(loop, configuration: .init(period: .milliseconds(20), maxBackoff: .milliseconds(100)))
        registry = LocalRegistry(loop: loop)
        servers = try (0..<count).map { _ in try TestServer() }
    }

    var heartbeats: HeartbeatManager { HeartbeatManager.of(loop) }

    /// Registers the server's URL and makes it available, as a switched-on server would.
    func publish(_ server: TestServer) async throws {
        try await registry.register(server.url)
        try await registry.available(server.url)
    }

    func publishAll() async throws {
        for server in servers { try await publish(server) }
    }

    func makeCluster(
        loadBalance: LoadBalance = .roundRobin, haStrategy: HAStrategy = .failover, failureThreshold: Int = 10,
        subscriber: MotanURL = TestService.subscriber
    ) async throws -> Cluster {
        let configuration = Cluster.Configuration(
            loadBalance: loadBalance, haStrategy: haStrategy,
            endpoint: .init(
                connections: 1, requestTimeout: .seconds(5), connectTimeout: .seconds(2),
                failureThreshold: failureThreshold, reconnectDelay: .milliseconds(10)),
            logger: capture.logger("cluster"), metricsFactory: metrics)
        let cluster = Cluster(serviceURL: subscriber, registry: registry, loop: loop, configuration: configuration)
        try await cluster.start()
        clusters.mutate { $0.append(cluster) }
        return cluster
    }

    /// Waits until the cluster has applied a registry list with `count` endpoints.
    func waitForEndpoints(_ cluster: Cluster, count: Int) async -> Bool {
        await eventually { await cluster.status().endpoints.count == count }
    }

    func shutdown() async {
        for cluster in clusters.value { await cluster.close() }
        await registry.close()
        for server in servers { server.releaseHeld() }
        for server in servers { server.shutdown() }
        loop.syncShutdown()
    }
}

extension SimpleValue {
    var text: String? {
        if case .string(let value) = self { value } else { nil }
    }
}
