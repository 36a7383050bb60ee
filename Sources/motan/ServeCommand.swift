import ArgumentParser
import MotanLoop
import MotanTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `motan serve`: the demo service on a Motan2 server endpoint, until the process is stopped.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the demo service (echo, hello, sleep, fail) over Motan2.")

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free one (printed on start).")
    var port: Int

    @Option(help: "Event loops (threads) serving connections.")
    var loops: Int = 1

    @Option(help: "Unanswered requests allowed per connection before new ones are rejected.")
    var maxInFlight: Int = 1024

    @Flag(help: "Close connections that send heartbeats instead of answering them.")
    var refuseHeartbeats = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard loops > 0 else { throw ValidationError("--loops must be at least 1") }
    }

    func run() async throws {
        let group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "serve")
        let server = try ServerEndpoint(
            group: group, services: MotanDemoService.registry(),
            configuration: .init(
                host: host, port: port, maxInFlightPerConnection: maxInFlight,
                heartbeatsEnabled: !refuseHeartbeats))
        // Scripts and tests started with --port 0 read the port from this line.
        print("listening on \(server.address)")
        fflush(nil)
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(3600))
        }
        server.close()
        group.syncShutdown()
    }
}
