import ArgumentParser
import Logging
import MotanCodec
import MotanHarness
import MotanLoop
import MotanTransport

/// `make run`: everything in one process on 127.0.0.1, nothing to install or start first.
/// Calls the demo service over Motan2, measures it, runs a client→server heartbeat drill
/// (server gone → endpoint unavailable → server back → a heartbeat revives it), and prints the
/// raw event-loop echo as the floor the RPC numbers are measured against.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run an embedded Motan2 server and client on 127.0.0.1: calls, latency, a heartbeat drill.")

    @Option(help: "Calls of the closed-loop latency run; the pipelined run makes ten times as many.")
    var calls: Int = 20_000

    @Option(help: "Upper bound on each load run.")
    var seconds: Int = 10

    @Option(help: "Heartbeat probe period of the client, in milliseconds.")
    var probeMilliseconds: Int = 200

    func run() async throws {
        // The demo prints the state changes itself; the library's own info lines would repeat them.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let serverGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "server")
        let clientGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "client")
        defer {
            clientGroup.syncShutdown()
            serverGroup.syncShutdown()
        }
        var server = try ServerEndpoint(group: serverGroup, services: MotanDemoService.registry())
        let address = server.address
        let service = MotanDemoService.name
        print("Motan2 server for \(service) listening on \(address)")

        let clock = ContinuousClock()
        let start = clock.now
        let stamp: @Sendable () -> String = {
            let elapsed = (clock.now - start).components
            let millis = String(elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000)
            return "[" + String(repeating: " ", count: max(0, 6 - millis.count)) + millis + " ms]"
        }
        _ = HeartbeatManager.of(
            clientGroup.loops[0], configuration: .init(period: .milliseconds(Int64(probeMilliseconds))))
        let endpoint = ClientEndpoint(
            address: address, loop: clientGroup.loops[0],
            configuration: .init(
                requestTimeout: .milliseconds(500), connectTimeout: .milliseconds(500),
                onEvent: { event in
                    switch event {
                    case .becameAvailable, .becameUnavailable: print("\(stamp()) endpoint \(address): \(event)")
                    default: break
                    }
                }))
        defer { endpoint.close() }

        print("\n== calls")
        for (method, arguments) in [("hello", ["swift-motan"]), ("echo", [SimpleValue.int64(42)]), ("fail", ["boom"])] {
            do {
                let value = try await endpoint.call(service: service, method: method, arguments: arguments)
                print(
                    "\(method)(\(arguments.map { CallCommand.render($0) }.joined(separator: ", "))) → \(CallCommand.render(value))"
                )
            } catch {
                print(
                    "\(method)(\(arguments.map { CallCommand.render($0) }.joined(separator: ", "))) → error: \(error)")
            }
        }

        print("\n== latency and throughput (64-byte string echo, one connection pool of 2)")
        let payload: [SimpleValue] = [.string(String(repeating: "m", count: 64))]
        for (label, concurrency, count) in [
            ("closed loop, 1 call in flight", 1, calls), ("16 calls in flight", 16, calls * 10),
        ] {
            let result = await RPCLoad.run(
                endpoint: endpoint, service: service, method: "echo", arguments: payload, calls: count,
                concurrency: concurrency, timeLimit: .seconds(Int64(seconds)))
            print("\(label): \(result)")
        }

        print("\n== heartbeat drill: the server goes away and comes back on the same port")
        await server.close()
        print("\(stamp()) server closed")
        var failures = 0
        while endpoint.isAvailable && failures < 100 {
            do {
                _ = try await endpoint.call(service: service, method: "hello", arguments: ["anyone?"])
            } catch {
                failures += 1
            }
        }
        print("\(stamp()) \(failures) calls failed; calls now fail fast: ", terminator: "")
        do {
            _ = try await endpoint.call(service: service, method: "hello", arguments: ["anyone?"])
            print("unexpectedly answered")
        } catch {
            print(error)
        }
        try await Task.sleep(for: .milliseconds(3 * probeMilliseconds))
        server = try ServerEndpoint(
            group: serverGroup, services: MotanDemoService.registry(), configuration: .init(port: address.port))
        print("\(stamp()) server listening again on \(server.address); waiting for a heartbeat to get through")
        let deadline = clock.now + .seconds(10)
        while !endpoint.isAvailable && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let answer = try await endpoint.call(service: service, method: "hello", arguments: ["again"])
        print("\(stamp()) hello(\"again\") → \(CallCommand.render(answer))")
        await server.close()

        print("\n== floor: raw echo of 64-byte frames over the same event loops, no Motan framing")
        let echo = try TCPServer.bind(host: "127.0.0.1", port: 0, on: serverGroup) { _ in LengthPrefixedEchoHandler() }
        defer { echo.close() }
        for (label, connections, depth, count) in [
            ("closed loop, 1 connection", 1, 1, calls), ("16 connections x 16 pipelined", 16, 16, calls * 10),
        ] {
            let result = try await EchoLoad.run(
                address: echo.address, group: clientGroup, connections: connections, depth: depth, frameSize: 64,
                roundTrips: count, timeLimit: .seconds(Int64(seconds)))
            print("\(label): \(result)")
        }
    }
}
