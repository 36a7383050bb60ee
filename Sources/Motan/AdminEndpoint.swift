import Foundation
import Logging
import MotanHTTP
import MotanRegistry
import MotanTransport
import Prometheus

/// One client endpoint as the admin endpoint reports it.
public struct EndpointReport: Sendable, Codable, Equatable {
    public var address: String
    public var service: String?
    public var available: Bool
    public var errorCount: Int
    /// Milliseconds since the last availability change (or since the endpoint was created).
    public var millisecondsSinceStateChange: UInt64

    public init(
        address: String, service: String? = nil, available: Bool, errorCount: Int,
        millisecondsSinceStateChange: UInt64
    ) {
        self.address = address
        self.service = service
        self.available = available
        self.errorCount = errorCount
        self.millisecondsSinceStateChange = millisecondsSinceStateChange
    }
}

/// The operator's view of a process: switches, client endpoints, registries, health and
/// metrics over HTTP/1.1 with JSON bodies, on its own loop group.
///
/// | request | answer |
/// |---|---|
/// | `GET /switcher` | every switch: `{"feature.configserver.heartbeat":false,…}` |
/// | `POST /switcher/<name>?value=on\|off` | sets one switch |
/// | `POST /online`, `POST /offline` | the heartbeat switch on / off |
/// | `GET /endpoints` | each client endpoint: address, available, error count, last change |
/// | `GET /registries` | each registry, its registered URLs and their state |
/// | `GET /healthz` | `{"status":"ok",…}` |
/// | `GET /metrics` | Prometheus text format |
///
/// Anything else is 404 (unknown path) or 405 (known path, wrong method), with a JSON error.
/// It binds 127.0.0.1 unless told otherwise: it can take a process out of service, so exposing
/// it takes an explicit `allowNonLoopback`, and is logged as a warning.
public final class AdminEndpoint: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// Required to bind anything but a loopback address.
        public var allowNonLoopback: Bool
        public var logger: Logger

        public init(
            host: String = "127.0.0.1", port: Int = 0, allowNonLoopback: Bool = false,
            logger: Logger = Logger(label: "motan.admin")
        ) {
            self.host = host
            self.port = port
            self.allowNonLoopback = allowNonLoopback
            self.logger = logger
        }
    }

    /// What the admin endpoint reads; each part may be left empty.
    public struct Sources: Sendable {
        public var switcher: Switcher
        public var registries: @Sendable () -> [any Registry]
        public var endpoints: @Sendable () async -> [EndpointReport]
        public var health: @Sendable () -> [String: String]
        public var metrics: PrometheusCollectorRegistry?
        /// Runs before `/metrics` is answered, to bring pulled values up to date.
        public var beforeScrape: @Sendable () -> Void

        public init(
            switcher: Switcher = .shared,
            registries: @escaping @Sendable () -> [any Registry] = { [] },
            endpoints: @escaping @Sendable () async -> [EndpointReport] = { [] },
            health: @escaping @Sendable () -> [String: String] = { [:] },
            metrics: PrometheusCollectorRegistry? = nil,
            beforeScrape: @escaping @Sendable () -> Void = {}
        ) {
            self.beforeScrape = beforeScrape
            self.switcher = switcher
            self.registries = registries
            self.endpoints = endpoints
            self.health = health
            self.metrics = metrics
        }
    }

    /// `/endpoints` for the endpoints of `clusters`, each reported under its service.
    public static func endpoints(of clusters: @escaping @Sendable () -> [Cluster])
        -> @Sendable () async -> [EndpointReport]
    {
        {
            var reports: [EndpointReport] = []
            for cluster in clusters() {
                for snapshot in await cluster.endpointSnapshots() {
                    reports.append(
                        EndpointReport(
                            address: snapshot.address.description, service: cluster.service,
                            available: snapshot.isAvailable, errorCount: snapshot.errorCount,
                            millisecondsSinceStateChange: UInt64(
                                snapshot.sinceStateChange.components.seconds * 1000
                                    + snapshot.sinceStateChange.components.attoseconds / 1_000_000_000_000_000)))
                }
            }
            return reports
        }
    }

    public let configuration: Configuration
    private let server: LoopHTTPServer
    private let router: AdminRouter

    /// Starts listening. Blocks until bound; never call on a loop thread.
    public init(
        group: UVEventLoopGroup, sources: Sources, configuration: Configuration = .init()
    ) throws(AdminEndpointError) {
        guard configuration.allowNonLoopback || Self.isLoopback(configuration.host) else {
            throw .nonLoopbackRefused(host: configuration.host)
        }
        if !Self.isLoopback(configuration.host) {
            configuration.logger.warning(
                "admin endpoint bound to \(configuration.host): anyone who reaches it can take this process out of service"
            )
        }
        self.configuration = configuration
        let router = AdminRouter(sources: sources, logger: configuration.logger)
        self.router = router
        do {
            server = try LoopHTTPServer.start(
                .init(host: configuration.host, port: configuration.port), on: group
            ) { request in
                await router.handle(request)
            }
        } catch {
            throw .bindFailed(error)
        }
        configuration.logger.info("admin endpoint on \(server.address)")
    }

    public var port: Int { server.port }
    public var address: TCPAddress { server.address }

    public func close() async {
        await server.shutdown()
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

public enum AdminEndpointError: Error, Sendable, CustomStringConvertible {
    case nonLoopbackRefused(host: String)
    case bindFailed(LoopError)

    public var description: String {
        switch self {
        case .nonLoopbackRefused(let host):
            "refusing to bind the admin endpoint to \(host): it is not a loopback address; set allowNonLoopback (motan serve --admin-allow-remote) to expose it"
        case .bindFailed(let error): "admin endpoint: \(error)"
        }
    }
}

/// Requests to answers; no sockets here, so every route is easy to read in one place.
struct AdminRouter: Sendable {
    let sources: AdminEndpoint.Sources
    let logger: Logger

    private enum Route {
        case switches
        case setSwitch(String)
        case online(Bool)
        case endpoints, registries, health, metrics

        /// The route a path names and the one method it takes; nil for an unknown path.
        init?(_ segments: [String]) {
            switch (segments.first, segments.count) {
            case ("switcher", 1): self = .switches
            case ("switcher", 2): self = .setSwitch(LoopHTTPPercent.decode(Substring(segments[1])))
            case ("online", 1): self = .online(true)
            case ("offline", 1): self = .online(false)
            case ("endpoints", 1): self = .endpoints
            case ("registries", 1): self = .registries
            case ("healthz", 1): self = .health
            case ("metrics", 1): self = .metrics
            default: return nil
            }
        }

        var method: String {
            switch self {
            case .setSwitch, .online: "POST"
            default: "GET"
            }
        }
    }

    func handle(_ request: LoopHTTPRequest) async -> LoopHTTPResponse {
        let path = String(request.path)
        guard let route = Route(path.split(separator: "/").map(String.init)) else {
            return error(404, "no such admin path: \(path)")
        }
        guard request.method == route.method else {
            var response = error(405, "method \(request.method) not allowed on \(path); use \(route.method)")
            response.headers.set("Allow", route.method)
            return response
        }
        switch route {
        case .switches:
            return json(sources.switcher.all)
        case .setSwitch(let name):
            return setSwitch(name, request: request)
        case .online(let online):
            let changed = sources.switcher.setOnline(online, source: .adminEndpoint)
            return json(SwitchAnswer(name: Switcher.heartbeatSwitchName, value: online, changed: changed))
        case .endpoints:
            return json(await sources.endpoints())
        case .registries:
            var answers: [RegistryAnswer] = []
            for registry in sources.registries() {
                let registrations = await registry.registrations()
                answers.append(
                    RegistryAnswer(
                        registry: registry.url.description,
                        services: registrations.map { .init(url: $0.url.description, state: $0.state) }))
            }
            return json(answers)
        case .health:
            var health = sources.health()
            health["status"] = health["status"] ?? "ok"
            health["online"] = String(sources.switcher.isOnline)
            return json(health)
        case .metrics:
            sources.beforeScrape()
            let text = sources.metrics?.emitToString() ?? ""
            return LoopHTTPResponse(status: 200, text: text, contentType: "text/plain; version=0.0.4")
        }
    }

    private func setSwitch(_ name: String, request: LoopHTTPRequest) -> LoopHTTPResponse {
        let value = request.queryItems.first { $0.name == "value" }?.value
        let on: Bool
        switch value?.lowercased() {
        case "on", "true", "1": on = true
        case "off", "false", "0": on = false
        default: return error(400, "value must be on or off, got \(value.map { "'\($0)'" } ?? "nothing")")
        }
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            return error(400, "invalid switch name '\(name)'")
        }
        let changed = sources.switcher.set(name, on, source: .adminEndpoint)
        return json(SwitchAnswer(name: name, value: on, changed: changed))
    }

    private struct SwitchAnswer: Encodable {
        var name: String
        var value: Bool
        var changed: Bool
    }

    private struct RegistryAnswer: Encodable {
        struct Service: Encodable {
            var url: String
            var state: ServiceState
        }
        var registry: String
        var services: [Service]
    }

    private struct ErrorAnswer: Encodable {
        var error: String
        var status: Int
    }

    private func json(_ value: some Encodable, status: Int = 200) -> LoopHTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(value)).map { Array($0) } ?? Array("{}".utf8)
        var response = LoopHTTPResponse(status: status, text: "", contentType: "application/json")
        response.body = body + [UInt8(ascii: "\n")]
        return response
    }

    private func error(_ status: Int, _ message: String) -> LoopHTTPResponse {
        json(ErrorAnswer(error: message, status: status), status: status)
    }
}
