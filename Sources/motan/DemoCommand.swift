import ArgumentParser
import Logging
import Motan
import MotanCodec
import MotanHarness
import MotanLoop
import MotanRegistry
import MotanTransport
import Synchronization

/// `make run`: a Motan cluster in one process on 127.0.0.1, nothing to install or start first.
/// A server and a client meet in an in-process registry, and the demo walks a newcomer through
/// both heartbeats: the server → registry switch (preview, online, graceful shutdown) and the
/// client → server probes (a fault fuses the endpoint, a heartbeat revives it).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Run a server and a client in one process: preview, switch on, calls, a fault drill, graceful shutdown.")

    @Option(help: "Calls of the closed-loop latency run; the pipelined run makes ten times as many.")
    var calls: Int = 5_000

    @Option(help: "Upper bound on each load run, in seconds.")
    var seconds: Int = 10

    @Option(help: "Heartbeat probe period of the client, in milliseconds.")
    var probeMilliseconds: Int = 200

    func run() async throws {
        // The demo narrates state changes itself; the library's own info lines would repeat them.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let narrator = Narrator()
        let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "server")
        let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "client")
        let clientLoop = clientGroup.loops[0]
        let switcher = Switcher()
        let registry = LocalRegistry(loop: clientLoop)
        let service = MotanDemoService.name

        func makeServer(port: Int) -> MotanServer {
            MotanServer(
                group: serverGroup, services: MotanDemoService.registry(),
                configuration: .init(
                    port: port, registries: [registry], switcher: switcher,
                    propagationWait: .milliseconds(200), drainTimeout: .seconds(5)))
        }

        narrator.section("1. start: the server registers unavailable (preview)")
        var server = makeServer(port: 0)
        try await server.start()
        let port = server.port ?? 0
        narrator.say(
            "server listening on 127.0.0.1:\(port); in the registry as: \(await registry.registrations().map(\.state.rawValue).joined())"
        )
        let cluster = Cluster(
            serviceURL: MotanURL(
                host: "127.0.0.1", port: 0, path: service, parameters: ["nodeType": "referer"]),
            registry: registry, loop: clientLoop,
            configuration: .init(
                endpoint: .init(
                    requestTimeout: .milliseconds(500), connectTimeout: .milliseconds(500),
                    onEvent: { event in
                        switch event {
                        case .becameAvailable, .becameUnavailable:
                            narrator.say("client endpoint 127.0.0.1:\(port): \(event)")
                        default: break
                        }
                    }),
                heartbeatManager: HeartbeatManager.of(
                    clientLoop, configuration: .init(period: .milliseconds(Int64(probeMilliseconds))))))
        try await cluster.start()
        await narrator.call(cluster, "hello", ["anyone?"])
        let direct = ClientEndpoint(address: TCPAddress(host: "127.0.0.1", port: port), loop: clientLoop)
        let preview = try await direct.call(service: service, method: "hello", arguments: ["preview"])
        narrator.say(
            "an operator calls the server directly during preview: hello(\"preview\") → \(CallCommand.render(preview))")
        await direct.close()

        narrator.section("2. switch on: feature.configserver.heartbeat")
        switcher.setOnline(true, source: .api)
        narrator.say("switch on")
        _ = await eventually { await cluster.status().endpoints.count == 1 }
        narrator.say("the client's cluster now lists \(await cluster.status().endpoints.count) server")
        await narrator.call(cluster, "hello", ["swift-motan"])
        await narrator.call(cluster, "fail", ["boom"])
        let endpoint = try await clientLoop.submit { cluster.endpoints[0] }
        let payload: [SimpleValue] = [.string(String(repeating: "m", count: 64))]
        for (label, concurrency, count) in [("1 call in flight", 1, calls), ("16 calls in flight", 16, calls * 10)] {
            let result = await RPCLoad.run(
                endpoint: endpoint, service: service, method: "echo", arguments: payload, calls: count,
                concurrency: concurrency, timeLimit: .seconds(Int64(seconds)))
            narrator.say("64-byte echo, \(label): \(result)")
        }

        narrator.section("3. fault drill: the server's listener and connections are cut")
        await server.endpoint?.close()
        narrator.say("server cut off (the registry still lists it)")
        var failures = 0
        while endpoint.isAvailable && failures < 100 {
            do { _ = try await cluster.call(method: "hello", arguments: ["still there?"]) } catch { failures += 1 }
        }
        narrator.say("\(failures) calls failed; now calls fail fast:")
        await narrator.call(cluster, "hello", ["anyone?"])
        try await Task.sleep(for: .milliseconds(Int64(3 * probeMilliseconds)))
        server = makeServer(port: port)
        try await server.start()
        narrator.say("server back on port \(port); waiting for a heartbeat to get through")
        _ = await eventually(timeout: .seconds(10)) { endpoint.isAvailable }
        await narrator.call(cluster, "hello", ["again"])

        narrator.section("4. graceful shutdown with 20 calls in flight")
        let answered = Counter()
        let restarted = server
        await withTaskGroup(of: Void.self) { tasks in
            for _ in 0..<20 {
                tasks.addTask {
                    if (try? await cluster.call(method: "sleep", arguments: [.int64(300)], timeout: .seconds(5))) != nil
                    {
                        answered.add()
                    }
                }
            }
            tasks.addTask {
                try? await Task.sleep(for: .milliseconds(50))
                narrator.say("shutdown: switch off → wait for subscribers → stop accepting → drain → close")
                await restarted.shutdown()
                narrator.say("server stopped; switch is \(switcher.isOnline ? "on" : "off")")
            }
        }
        narrator.say("\(answered.value) of 20 calls in flight were answered")
        let status = await cluster.status()
        narrator.say(
            "the registry lists \(try await registry.discover(cluster.serviceURL).count) servers; the client keeps its \(status.endpoints.count) endpoint(s) (stale: \(status.keepingStaleEndpoints)) and logs a warning"
        )
        await cluster.close()
        await registry.close()
        await clientGroup.shutdown()
        await serverGroup.shutdown()
    }
}

/// Prints each step with the time since the demo started.
private final class Narrator: Sendable {
    private let clock = ContinuousClock()
    private let start = ContinuousClock.now

    func section(_ title: String) { print("\n== \(title)") }

    func say(_ line: String) {
        let elapsed = (clock.now - start).components
        let millis = String(elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
        print("[" + String(repeating: " ", count: max(0, 6 - millis.count)) + millis + " ms] " + line)
    }

    func call(_ cluster: Cluster, _ method: String, _ arguments: [SimpleValue]) async {
        let shown = "\(method)(\(arguments.map { CallCommand.render($0) }.joined(separator: ", ")))"
        do {
            say("\(shown) → \(CallCommand.render(try await cluster.call(method: method, arguments: arguments)))")
        } catch {
            say("\(shown) → error: \(error)")
        }
    }
}

private final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// Polls until `condition` holds or `timeout` passes.
private func eventually(timeout: Duration = .seconds(5), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}
