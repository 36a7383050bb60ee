import ArgumentParser
import Logging
import Metrics
import Motan
import MotanLoop
import MotanRegistry
import MotanTransport
import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `motan serve`: the demo service on a Motan2 server, registered in the given registries, with
/// an optional admin endpoint, until SIGTERM or SIGINT drains it.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the demo service (echo, hello, sleep, fail) over Motan2.",
        discussion: """
            Registries: direct://host:port[,host:port…], local://, zookeeper://host:port[,…], \
            consul://host:port. Services register unavailable; --switch on (or POST /online on the \
            admin endpoint, or `motan switch`) makes them available. SIGTERM or SIGINT: switch off, \
            wait for subscribers, stop accepting, answer what is in flight, exit 0.
            """)

    @Option(help: "Address to listen on; also the host published in registries unless --advertise-host is given.")
    var host: String = "127.0.0.1"

    @Option(help: "Host published in registries for clients to call (needed when --host is 0.0.0.0 or ::).")
    var advertiseHost: String?

    @Option(help: "Port to listen on; 0 picks a free one (printed on start).")
    var port: Int

    @Option(help: "Event loops (threads) serving connections.")
    var loops: Int = 1

    @Option(help: "Unanswered requests allowed per connection before new ones are rejected.")
    var maxInFlight: Int = 1024

    @Flag(help: "Close connections that send heartbeats instead of answering them.")
    var refuseHeartbeats = false

    @Option(help: "On SIGTERM or SIGINT, milliseconds requests in flight get to finish.")
    var gracePeriod: Int = 10_000

    @Option(name: .customLong("registry"), help: "A registry to register in (repeatable).")
    var registries: [String] = []

    @Option(help: "Service group published in registries.")
    var group: String = MotanURL.defaultGroup

    @Option(help: "The heartbeat switch (feature.configserver.heartbeat) at start: on or off.")
    var `switch`: String = "off"

    @Option(
        help:
            "Milliseconds shutdown waits for subscribers after going unavailable (default: 2 × the registries' propagation)."
    )
    var propagationWait: Int?

    @Option(help: "Port of the admin HTTP endpoint (switches, endpoints, registries, metrics); none by default.")
    var adminPort: Int?

    @Option(help: "Address of the admin endpoint.")
    var adminHost: String = "127.0.0.1"

    @Flag(help: "Allow the admin endpoint on a non-loopback address.")
    var adminAllowRemote = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard loops > 0 else { throw ValidationError("--loops must be at least 1") }
        guard ["on", "off"].contains(`switch`) else { throw ValidationError("--switch must be on or off") }
        if let adminPort, !(0...65535).contains(adminPort) {
            throw ValidationError("--admin-port must be 0...65535")
        }
        for text in registries {
            do {
                _ = try RegistryAddress(parsing: text)
            } catch {
                throw ValidationError("--registry \(text): \(error)")
            }
        }
    }

    func run() async throws {
        // Ignored before anything can be signalled; the service group's signal source still sees
        // them, so a SIGTERM that arrives before it is listening cannot kill the process.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        installRegistryModules()
        let logger = Logger(label: "motan.serve")
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
        let serverGroup = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "serve")
        let controlGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "control")
        let switcher = Switcher.shared
        if `switch` == "on" { switcher.setOnline(true, source: .commandLine) }
        let made = try registries.map { text in
            try RegistryFactory.shared.makeRegistry(
                parsing: text, context: RegistryContext(loop: controlGroup.loops[0]))
        }
        let server = MotanServer(
            group: serverGroup, services: MotanDemoService.registry(),
            configuration: .init(
                host: host, advertisedHost: advertiseHost, port: port, group: group,
                parameters: ["application": "motan-swift-serve"],
                registries: made, switcher: switcher,
                propagationWait: propagationWait.map { .milliseconds($0) },
                drainTimeout: .milliseconds(gracePeriod),
                endpoint: .init(maxInFlightPerConnection: maxInFlight, heartbeatsEnabled: !refuseHeartbeats)))
        let admin = try adminPort.map { adminPort in
            try AdminEndpoint(
                group: controlGroup,
                sources: .init(
                    switcher: switcher, registries: { made },
                    health: { ["phase": server.phase.rawValue] }, metrics: prometheus,
                    beforeScrape: { server.publishStatistics() }),
                configuration: .init(host: adminHost, port: adminPort, allowNonLoopback: adminAllowRemote))
        }
        let service = MotanServerService(server: server) { server in
            // Scripts and tests started with --port 0 read the port from this line.
            print("listening on \(TCPAddress(host: host, port: server.port ?? port))")
            if let admin { print("admin endpoint on \(admin.address)") }
            fflush(nil)
        }
        let services = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await services.run()
        await admin?.close()
        for registry in made { await registry.close() }
        print("stopped: \(server.drainedEverything ? "every request answered" : "grace period over, requests dropped")")
        fflush(nil)
        await controlGroup.shutdown()
        await serverGroup.shutdown()
    }
}
