import ArgumentParser
import Foundation
import MotanHTTP
import MotanLoop

/// `motan switch`: reads or sets switches through a server's admin endpoint.
struct SwitchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "Print or set switches of a running server through its admin endpoint.",
        discussion: """
            motan switch --admin 127.0.0.1:8002                         every switch
            motan switch --admin 127.0.0.1:8002 feature.configserver.heartbeat
            motan switch --admin 127.0.0.1:8002 feature.configserver.heartbeat on
            """)

    @Option(help: "The server's admin endpoint, host:port.")
    var admin: String

    @Argument(help: "A switch name; none prints every switch.")
    var name: String?

    @Argument(help: "on or off; none prints the switch.")
    var value: String?

    func validate() throws {
        do {
            _ = try TCPAddress(parsing: admin)
        } catch {
            throw ValidationError("--admin: \(error)")
        }
        if let value, !["on", "off"].contains(value) {
            throw ValidationError("the value must be on or off, got '\(value)'")
        }
    }

    func run() async throws {
        let address = try TCPAddress(parsing: admin)
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "switch")
        let client = LoopHTTPClient(loop: group.loops[0], configuration: .init(connectTimeout: .seconds(2)))
        let request: LoopHTTPRequest
        if let name, let value {
            let encoded = LoopHTTPPercent.encode(name, keeping: ".-_")
            request = LoopHTTPRequest(method: "POST", target: "/switcher/\(encoded)?value=\(value)")
        } else {
            request = LoopHTTPRequest(method: "GET", target: "/switcher")
        }
        let outcome: Result<LoopHTTPResponse, LoopHTTPError>
        do {
            outcome = .success(try await client.execute(request, to: address, timeout: .seconds(5)))
        } catch {
            outcome = .failure(error)
        }
        await client.shutdown()
        await group.shutdown()
        let response: LoopHTTPResponse
        switch outcome {
        case .failure(let error): throw CommandFailure("\(admin): \(error)")
        case .success(let answer): response = answer
        }
        guard response.status == 200 else {
            throw CommandFailure("\(response.status) \(response.bodyText)")
        }
        if value == nil, let name {
            let all = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Bool] ?? [:]
            guard let on = all[name] else { throw CommandFailure("no switch named \(name)") }
            print("\(name) \(on ? "on" : "off")")
        } else if value == nil {
            let all = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Bool] ?? [:]
            for key in all.keys.sorted() { print("\(key) \(all[key]! ? "on" : "off")") }
        } else {
            print(response.bodyText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// A command that could not do its job: ArgumentParser prints the message and exits with 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
