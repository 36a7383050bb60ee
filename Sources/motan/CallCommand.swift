import ArgumentParser
import Motan
import MotanCodec
import MotanLoop
import MotanRegistry
import MotanTransport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `motan call`: one request to a Motan2 server, printing the decoded answer or the error.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a method on a Motan2 server and print the decoded response.",
        discussion: """
            Arguments are strings unless prefixed: i:42 (int64), i32:42, f:1.5 (float64), \
            b:true, s:text (a string that looks like a prefix), null.
            Examples:
              motan call 127.0.0.1:8002 \(MotanDemoService.name) hello world
              motan call --registry zookeeper://127.0.0.1:2181 \(MotanDemoService.name) hello world
            """)

    @Option(help: "Find the server in this registry instead of naming it.")
    var registry: String?

    @Argument(
        help: ArgumentHelp(
            "[host:port] service method [arguments…]",
            discussion: "The server address is left out with --registry.", valueName: "words"))
    var words: [String] = []

    @Option(help: "Service group, sent as M_g.")
    var group: String?

    @Option(help: "Request timeout in milliseconds.")
    var timeout: Int = 1000

    /// host:port (without --registry), service, method, then the arguments.
    private var parts: (address: String?, service: String, method: String, arguments: [String]) {
        let rest = registry == nil ? Array(words.dropFirst()) : words
        return (registry == nil ? words.first : nil, rest[0], rest[1], Array(rest.dropFirst(2)))
    }

    func validate() throws {
        let needed = registry == nil ? 3 : 2
        guard words.count >= needed else {
            throw ValidationError(
                registry == nil
                    ? "expected host:port service method [arguments…] (or --registry URL service method …)"
                    : "expected service method [arguments…] after --registry")
        }
        if let registry {
            do {
                _ = try RegistryAddress(parsing: registry)
            } catch {
                throw ValidationError("--registry \(registry): \(error)")
            }
        }
    }

    func run() async throws {
        let parts = self.parts
        let values = try parts.arguments.map(Self.parse)
        let loops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "call")
        let outcome: Result<SimpleValue, any Error>
        if let address = parts.address {
            let endpoint = ClientEndpoint(
                address: try TCPAddress(parsing: address), loop: loops.loops[0],
                configuration: .init(connections: 1, requestTimeout: .milliseconds(timeout)))
            do {
                outcome = .success(
                    try await endpoint.call(
                        service: parts.service, method: parts.method, group: group, arguments: values))
            } catch {
                outcome = .failure(error)
            }
            await endpoint.close()
        } else {
            outcome = await callThroughRegistry(
                parts.service, parts.method, values, loop: loops.loops[0])
        }
        await loops.shutdown()
        switch outcome {
        case .success(let value):
            print(Self.render(value, topLevel: true))
        case .failure(let error):
            let line = Array("error: \(error)\n".utf8)
            _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            throw ExitCode(1)
        }
    }

    /// Subscribes, waits (bounded) for the registry's first list, then calls through a cluster.
    private func callThroughRegistry(
        _ service: String, _ method: String, _ values: [SimpleValue], loop: UVEventLoop
    ) async -> Result<SimpleValue, any Error> {
        installRegistryModules()
        let made: any Registry
        do {
            made = try RegistryFactory.shared.makeRegistry(
                parsing: registry!, context: RegistryContext(loop: loop))
        } catch {
            return .failure(error)
        }
        let subscriber = MotanURL(
            host: "127.0.0.1", port: 0, path: service,
            parameters: ["group": group ?? MotanURL.defaultGroup, "nodeType": "referer", "application": "motan-call"])
        let cluster = Cluster(
            serviceURL: subscriber, registry: made, loop: loop,
            configuration: .init(endpoint: .init(connections: 1, requestTimeout: .milliseconds(timeout))))
        do {
            try await cluster.start()
        } catch {
            await cluster.close()
            await made.close()
            return .failure(error)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(max(timeout, 3000))
        while await cluster.status().updates == 0, clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let result: Result<SimpleValue, any Error>
        do {
            result = .success(try await cluster.call(method: method, arguments: values))
        } catch {
            result = .failure(error)
        }
        await cluster.close()
        await made.close()
        return result
    }

    static func parse(_ text: String) throws -> SimpleValue {
        func number<T: LosslessStringConvertible>(_ prefix: String, _ type: T.Type) throws -> T {
            guard let value = T(String(text.dropFirst(prefix.count))) else {
                throw ValidationError("not a number: \(text)")
            }
            return value
        }
        if text == "null" { return .null }
        if text.hasPrefix("i32:") { return .int32(try number("i32:", Int32.self)) }
        if text.hasPrefix("i:") { return .int64(try number("i:", Int64.self)) }
        if text.hasPrefix("f:") { return .float64(try number("f:", Double.self)) }
        if text.hasPrefix("b:") { return .bool(try number("b:", Bool.self)) }
        if text.hasPrefix("s:") { return .string(String(text.dropFirst(2))) }
        return .string(text)
    }

    /// JSON-like text; a top-level string prints bare so shell scripts can use it directly.
    static func render(_ value: SimpleValue, topLevel: Bool = false) -> String {
        switch value {
        case .null: return "null"
        case .string(let text): return topLevel ? text : quoted(text)
        case .bool(let flag): return String(flag)
        case .byte(let byte): return String(byte)
        case .int16(let number): return String(number)
        case .int32(let number): return String(number)
        case .int64(let number): return String(number)
        case .float32(let number): return String(number)
        case .float64(let number): return String(number)
        case .bytes(let bytes):
            return "0x" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        case .stringArray(let strings): return "[" + strings.map(quoted).joined(separator: ", ") + "]"
        case .array(let values): return "[" + values.map { render($0) }.joined(separator: ", ") + "]"
        case .stringMap(let pairs):
            return "{" + pairs.map { "\(quoted($0.key)): \(quoted($0.value))" }.joined(separator: ", ") + "}"
        case .map(let pairs):
            return "{" + pairs.map { "\(render($0.key)): \(render($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    private static func quoted(_ text: String) -> String {
        var out = "\""
        for character in text {
            if character == "\"" || character == "\\" { out.append("\\") }
            out.append(character)
        }
        return out + "\""
    }
}
