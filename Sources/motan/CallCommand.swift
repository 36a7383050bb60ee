import ArgumentParser
import MotanCodec
import MotanLoop
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
            Example: motan call 127.0.0.1:8002 \(MotanDemoService.name) hello world
            """)

    @Argument(help: "Server address, host:port.")
    var address: String

    @Argument(help: "Service (interface) name, sent as M_p.")
    var service: String

    @Argument(help: "Method name, sent as M_m.")
    var method: String

    @Argument(help: "Arguments, in simple serialization.")
    var arguments: [String] = []

    @Option(help: "Service group, sent as M_g.")
    var group: String?

    @Option(help: "Request timeout in milliseconds.")
    var timeout: Int = 1000

    func run() async throws {
        let target = try TCPAddress(parsing: address)
        let values = try arguments.map(Self.parse)
        let loops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "call")
        defer { loops.syncShutdown() }
        let endpoint = ClientEndpoint(
            address: target, loop: loops.loops[0],
            configuration: .init(connections: 1, requestTimeout: .milliseconds(timeout)))
        defer { endpoint.close() }
        do {
            let value = try await endpoint.call(
                service: service, method: method, group: group, arguments: values)
            print(Self.render(value, topLevel: true))
        } catch {
            let line = Array("error: \(error)\n".utf8)
            _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            throw ExitCode(1)
        }
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
