import ArgumentParser
import MotanHarness
import MotanLoop

/// `make run`: a self-contained loopback demo that needs nothing but this binary.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Start an echo server on 127.0.0.1 and drive a bounded load against it over MotanLoop.")

    @Option(help: "Event loops (threads) for the server and for the client.")
    var loops: Int = 1

    @Option(
        help:
            "Round trips of the closed-loop run; the pipelined run does ten times as many. Each run also stops after --seconds."
    )
    var roundTrips: Int = 50_000

    @Option(help: "Upper bound on the run time.")
    var seconds: Int = 10

    @Option(help: "Bytes per frame, including the 4-byte length prefix.")
    var frameSize: Int = 64

    func run() async throws {
        let serverGroup = EventLoopGroup(numberOfLoops: loops, namePrefix: "server")
        let clientGroup = EventLoopGroup(numberOfLoops: loops, namePrefix: "client")
        defer {
            clientGroup.syncShutdown()
            serverGroup.syncShutdown()
        }
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: serverGroup) { _ in
            LengthPrefixedEchoHandler()
        }
        defer { server.close() }
        print("echo server listening on \(server.address) (\(loops) loop(s))")
        for (label, connections, depth, count) in [
            ("1 connection, closed loop", 1, 1, roundTrips),
            ("16 connections x 16 pipelined", 16, 16, roundTrips * 10),
        ] {
            let result = try await EchoLoad.run(
                address: server.address, group: clientGroup, connections: connections, depth: depth,
                frameSize: frameSize, roundTrips: count, timeLimit: .seconds(Int64(seconds)))
            print("\(label): \(result)")
        }
    }
}
