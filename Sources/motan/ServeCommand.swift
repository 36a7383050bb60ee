import ArgumentParser
import Dispatch
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

    @Option(help: "On SIGTERM or SIGINT, milliseconds requests in flight get to finish.")
    var gracePeriod: Int = 10_000

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard loops > 0 else { throw ValidationError("--loops must be at least 1") }
    }

    func run() async throws {
        // Installed before the port is printed: whoever reads the port may signal at once.
        let signals = StopSignals()
        let group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "serve")
        let server = try ServerEndpoint(
            group: group, services: MotanDemoService.registry(),
            configuration: .init(
                host: host, port: port, maxInFlightPerConnection: maxInFlight,
                heartbeatsEnabled: !refuseHeartbeats))
        // Scripts and tests started with --port 0 read the port from this line.
        print("listening on \(server.address)")
        fflush(nil)
        let received = await signals.next()
        print("signal \(received): stopping, \(server.requestsInFlight) requests in flight")
        fflush(nil)
        let answered = await server.shutdown(gracePeriod: .milliseconds(gracePeriod))
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                group.syncShutdown()
                done.resume()
            }
        }
        print(answered ? "stopped: every request answered" : "stopped: grace period over, requests dropped")
        fflush(nil)
    }
}

/// SIGTERM and SIGINT, delivered as values instead of killing the process, so that `serve` can
/// drain before it exits.
final class StopSignals: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    private let stream: AsyncStream<Int32>

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        self.stream = stream
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    deinit { for source in sources { source.cancel() } }

    /// The first signal received.
    func next() async -> Int32 {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? SIGTERM
    }
}
