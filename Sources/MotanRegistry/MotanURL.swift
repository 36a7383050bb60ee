/// A service instance as registries store it: `protocol://host:port/path?key=value&…`.
///
/// Reads both forms the originals write (Java: URL-encoded, hash order, trailing `&`, bare keys;
/// motan-go: `group` first, sorted, unencoded) and writes motan-go's, which both accept.
public struct MotanURL: Sendable, Hashable, CustomStringConvertible {
    public var `protocol`: String
    public var host: String
    public var port: Int
    /// The interface name, without a leading `/`.
    public var path: String
    /// Every parameter, `group` included.
    public var parameters: [String: String]

    public static let defaultGroup = "default_rpc"
    public static let defaultVersion = "1.0"

    public init(
        protocol: String = "motan2", host: String, port: Int, path: String,
        parameters: [String: String] = [:]
    ) {
        self.protocol = `protocol`
        self.host = host
        self.port = port
        self.path = path
        self.parameters = parameters
    }

    public var group: String {
        get { parameters["group"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultGroup }
        set { parameters["group"] = newValue }
    }

    public var version: String { parameters["version"] ?? Self.defaultVersion }
    public var nodeType: String? { parameters["nodeType"] }

    public subscript(parameter key: String) -> String? {
        get { parameters[key] }
        set { parameters[key] = newValue }
    }

    // MARK: identity strings (spec: switcher-and-registries.md §4.2)

    /// `host:port`, or `host` alone when the port is not positive: the ZooKeeper node name.
    public var hostPort: String { port > 0 ? "\(host):\(port)" : host }
    /// `group/path/version`.
    public var serviceKey: String { "\(group)/\(path)/\(version)" }
    /// `protocol://host:port/group/path/version`.
    public var protocolKey: String { "\(`protocol`)://\(host):\(port)/\(group)/\(path)/\(version)" }
    /// `protocol://host:port/group/path/version/nodeType`.
    public var identity: String { "\(protocolKey)/\(nodeType ?? "")" }

    // MARK: text form

    /// motan-go's form: `group` first, the other keys sorted, no trailing `&`. Keys and values are
    /// written as they are, except for the bytes that would change how either original splits or
    /// decodes the text (`&`, `=`, `%`, `?`, `+`, `#`, whitespace, controls, non-ASCII): those are
    /// `%XX`-escaped, which Java's reader (and ours) decodes. An IPv6 host is bracketed.
    public var description: String {
        let authorityHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        var text = "\(`protocol`)://\(port > 0 ? "\(authorityHost):\(port)" : authorityHost)/\(path)"
        var pairs: [String] = []
        if let group = parameters["group"] { pairs.append("group=\(Self.escapedForQuery(group))") }
        for key in parameters.keys.sorted() where key != "group" {
            pairs.append("\(Self.escapedForQuery(key))=\(Self.escapedForQuery(parameters[key]!))")
        }
        if !pairs.isEmpty { text += "?" + pairs.joined(separator: "&") }
        return text
    }

    /// Escapes only what would break a reader; everything else stays readable and unencoded, as
    /// motan-go (which never decodes) expects.
    static func escapedForQuery(_ text: String) -> String {
        func needsEscape(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "&"), UInt8(ascii: "="), UInt8(ascii: "%"), UInt8(ascii: "?"),
                UInt8(ascii: "+"), UInt8(ascii: "#"):
                true
            default: byte <= 0x20 || byte >= 0x7F
            }
        }
        guard text.utf8.contains(where: needsEscape) else { return text }
        var out = ""
        for byte in text.utf8 {
            if needsEscape(byte) {
                let hex = String(byte, radix: 16, uppercase: true)
                out += byte < 16 ? "%0\(hex)" : "%\(hex)"
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// Parses either original's text form; nil when there is no `protocol://host` part.
    public init?(parsing text: String) {
        var rest = Substring(text.trimmingWhitespace())
        var query: Substring = ""
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        guard let schemeEnd = rest.firstRange(of: "://") ?? rest.firstRange(of: ":/") else { return nil }
        let scheme = rest[..<schemeEnd.lowerBound]
        guard !scheme.isEmpty else { return nil }
        rest = rest[schemeEnd.upperBound...]
        let authority: Substring
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        } else {
            authority = rest
        }
        var host = authority
        var port = 0
        if let colon = authority.lastIndex(of: ":"), !authority.hasPrefix("[") || authority[..<colon].hasSuffix("]") {
            host = authority[..<colon]
            guard let number = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = number
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let equals = pair.firstIndex(of: "=") {
                let key = Self.percentDecoded(pair[..<equals])
                guard !key.isEmpty else { continue }
                parameters[key] = Self.percentDecoded(pair[pair.index(after: equals)...])
            } else {
                let key = Self.percentDecoded(pair)
                parameters[key] = key
            }
        }
        self.init(
            protocol: String(scheme), host: String(host), port: port,
            path: String(path.drop { $0 == "/" }), parameters: parameters)
    }

    /// Java's `URLDecoder`: `+` is a space, `%XX` a UTF-8 byte; a malformed escape stays as written.
    public static func percentDecoded(_ text: Substring) -> String {
        guard text.contains(where: { $0 == "%" || $0 == "+" }) else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let high = hexValue(utf8[utf8.startIndex]),
                let low = hexValue(utf8[utf8.index(after: utf8.startIndex)])
            {
                // Hex digits only: `UInt8(_:radix:)` would also take a sign, e.g. "%+1".
                bytes.append(high << 4 | low)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Java's `URLEncoder` (UTF-8, space as `+`), for registries that store encoded text.
    public static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"),
                UInt8(ascii: "*"), UInt8(ascii: "_"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "):
                out += "+"
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += byte < 16 ? "%0\(hex)" : "%\(hex)"
            }
        }
        return out
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
