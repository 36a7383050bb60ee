import Foundation
import Motan
import MotanHTTP
import MotanRegistry
import MotanTestSupport
import MotanTransport
import ServiceLifecycle
import Synchronization
import Testing

/// A server exporting `lifecycle.Echo` (echo, and `slow ms` that answers after ms milliseconds)
/// into a local registry, with a switcher of its own.
private struct LifecycleRig {
    let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "lc-server")
    let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "lc-client")
    let switcher = Switcher()
    let registry: LocalRegistry
    let server: MotanServer
    static let service = "lifecycle.Echo"

    init(drainTimeout: Duration = .seconds(5), propagationWait: Duration = .milliseconds(100)) {
        registry = LocalRegistry(loop: clientGroup.loops[0])
        var services = ServiceRegistry()
        services.handleAsync(service: Self.service, method: "echo") { request in
            request.arguments.first ?? .null
        }
        services.handleAsync(service: Self.service, method: "slow") { request in
            if case .int64(let ms)? = request.arguments.first {
                try await Task.sleep(for: .milliseconds(ms))
            }
            return .string("slept")
        }
        server = MotanServer(
            group: serverGroup, services: services,
            configuration: .init(
                registries: [registry], switcher: switcher, propagationWait: propagationWait,
                drainTimeout: drainTimeout))
    }

    var subscriberURL: MotanURL {
        MotanURL(host: "127.0.0.1", port: 0, path: Self.service, parameters: ["group": MotanURL.defaultGroup])
    }

    func shutdownGroups() async {
        await clientGroup.shutdown()
        await serverGroup.shutdown()
    }
}

@Suite("Server lifecycle: preview, switch, graceful shutdown")
struct ServerLifecycleTests {
    @Test("registered unavailable while the switch is off; on shows it to subscribers, off takes it away")
    func switchDrivesAvailability() async throws {
        let rig = LifecycleRig()
        try await rig.server.start()
        let seen = Box<[[MotanURL]]>([])
        _ = try await rig.registry.subscribe(rig.subscriberURL) { servers in seen.mutate { $0.append(servers) } }
        #expect(await rig.registry.registrations().map(\.state) == [.unavailable])
        #expect(try await rig.registry.discover(rig.subscriberURL).isEmpty)

        rig.switcher.setOnline(true)
        #expect(await eventually { seen.value.last?.count == 1 })
        let url = try #require(seen.value.last?.first)
        #expect(url.port == rig.server.port)
        #expect(url.path == LifecycleRig.service)
        #expect(url.nodeType == "service")

        // A call in flight when the switch goes off is still answered.
        let cluster = Cluster(serviceURL: rig.subscriberURL, registry: rig.registry, loop: rig.clientGroup.loops[0])
        try await cluster.start()
        #expect(await eventually { await cluster.status().endpoints.count == 1 })
        let slow = Task { try await cluster.call(method: "slow", arguments: [.int64(300)], timeout: .seconds(3)) }
        try await Task.sleep(for: .milliseconds(50))
        rig.switcher.setOnline(false)
        #expect(await eventually { seen.value.last?.isEmpty == true })
        #expect(try await slow.value == .string("slept"))
        #expect(await rig.registry.registrations().map(\.state) == [.unavailable])

        await cluster.close()
        await rig.server.shutdown()
        await rig.shutdownGroups()
    }

    @Test("graceful shutdown answers every call in flight, then refuses new connections")
    func gracefulShutdownDrains() async throws {
        let rig = LifecycleRig(propagationWait: .milliseconds(200))
        try await rig.server.start()
        rig.switcher.setOnline(true)
        let port = try #require(rig.server.port)
        let client = ClientEndpoint(
            address: TCPAddress(host: "127.0.0.1", port: port), loop: rig.clientGroup.loops[0],
            configuration: .init(requestTimeout: .seconds(5)))
        // 20 calls that are still running when shutdown begins, and outlast the propagation wait.
        let results = Box<[Result<SimpleValue, TransportError>]>([])
        await withTaskGroup(of: Void.self) { tasks in
            for _ in 0..<20 {
                tasks.addTask {
                    do throws(TransportError) {
                        let value = try await client.call(
                            service: LifecycleRig.service, method: "slow", arguments: [.int64(600)])
                        results.mutate { $0.append(.success(value)) }
                    } catch {
                        results.mutate { $0.append(.failure(error)) }
                    }
                }
            }
            tasks.addTask {
                try? await Task.sleep(for: .milliseconds(100))
                await rig.server.shutdown()
            }
        }
        #expect(results.value.count == 20)
        #expect(results.value.allSatisfy { (try? $0.get()) == .string("slept") })
        #expect(rig.server.phase == .stopped)
        #expect(rig.switcher.isOnline == false)
        #expect(await rig.registry.registrations().isEmpty)
        // The door is closed: a new call cannot connect.
        let late = ClientEndpoint(
            address: TCPAddress(host: "127.0.0.1", port: port), loop: rig.clientGroup.loops[0])
        await #expect(throws: TransportError.self) {
            _ = try await late.call(service: LifecycleRig.service, method: "echo", arguments: [.string("x")])
        }
        await late.close()
        await client.close()
        await rig.shutdownGroups()
    }

    @Test("a drain deadline cuts off calls that outlive it, and shutdown still completes")
    func drainDeadline() async throws {
        let rig = LifecycleRig(drainTimeout: .milliseconds(200), propagationWait: .zero)
        try await rig.server.start()
        let port = try #require(rig.server.port)
        let client = ClientEndpoint(
            address: TCPAddress(host: "127.0.0.1", port: port), loop: rig.clientGroup.loops[0],
            configuration: .init(requestTimeout: .seconds(10)))
        let stuck = Task {
            try await client.call(service: LifecycleRig.service, method: "slow", arguments: [.int64(5000)])
        }
        try await Task.sleep(for: .milliseconds(100))
        let clock = ContinuousClock()
        let started = clock.now
        await rig.server.shutdown()
        // The drain gave up at its deadline instead of waiting out the 5 s call.
        #expect(clock.now - started < .seconds(4))
        await #expect(throws: TransportError.self) { _ = try await stuck.value }
        await client.close()
        await rig.shutdownGroups()
    }

    @Test("as a lifecycle service: the group's graceful shutdown drains the server")
    func serviceGroupShutdown() async throws {
        let rig = LifecycleRig(propagationWait: .milliseconds(50))
        let service = MotanServerService(server: rig.server)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], logger: .init(label: "test.group")))
        async let running: Void = group.run()
        #expect(await eventually { rig.server.phase == .serving })
        let port = try #require(rig.server.port)
        let client = ClientEndpoint(
            address: TCPAddress(host: "127.0.0.1", port: port), loop: rig.clientGroup.loops[0],
            configuration: .init(requestTimeout: .seconds(5)))
        let inFlight = Task {
            try await client.call(service: LifecycleRig.service, method: "slow", arguments: [.int64(400)])
        }
        try await Task.sleep(for: .milliseconds(100))
        await group.triggerGracefulShutdown()
        #expect(try await inFlight.value == .string("slept"))
        try await running
        #expect(rig.server.phase == .stopped)
        await client.close()
        await rig.shutdownGroups()
    }

    @Test("a wildcard listening address needs an advertised host before it enters a registry")
    func advertisedHost() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "lc-advertise")
        let registry = LocalRegistry(loop: group.loops[0])
        var services = ServiceRegistry()
        services.handleAsync(service: LifecycleRig.service, method: "echo") { $0.arguments.first ?? .null }
        let wildcard = MotanServer(
            group: group, services: services,
            configuration: .init(host: "0.0.0.0", registries: [registry], switcher: Switcher()))
        await #expect(throws: MotanServerError.self) { try await wildcard.start() }
        #expect(wildcard.phase == .idle)
        let advertised = MotanServer(
            group: group, services: services,
            configuration: .init(
                host: "0.0.0.0", advertisedHost: "127.0.0.1", registries: [registry], switcher: Switcher(),
                propagationWait: .zero))
        try await advertised.start()
        #expect(await registry.registrations().map(\.url.host) == ["127.0.0.1"])
        await advertised.shutdown()
        await registry.close()
        await group.shutdown()
    }
}
