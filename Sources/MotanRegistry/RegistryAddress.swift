/// Where a registry is, as written on a command line or in configuration:
/// `direct://host:port[,host:port…]`, `local://`, `zookeeper://host:port[,host:port…]`,
/// `consul://host:port`, each optionally followed by `?key=value&…`.
///
/// Only the shape is checked here (scheme, host list, ports); whether a scheme can be used is the
/// `RegistryFactory`'s business, so that registry modules can add their own.
public struct RegistryAddress: Sendable, Hashable, CustomStringConvertible {
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Lower-cased: `direct`, `local`, `zookeeper`, `consul`, or a scheme a module registered.
    public var scheme: String
    public var hosts: [Host]
    public var parameters: [String: String]

    public init(scheme: String, hosts: [Host] = [], parameters: [String: String] = [:]) {
        self.scheme = scheme.lowercased()
        self.hosts = hosts
        self.parameters = parameters
    }

    /// Ports used when a host is written without one.
    public static let defaultPorts: [String: Int] = ["zookeeper": 2181, "consul": 8500]

    /// Parses the text form. A `direct` address may also list its servers in an `address`
    /// parameter (Java's form: `direct://?address=h1:p1,h2:p2`).
    public init(parsing text: String) throws(RegistryError) {
        let trimmed = text.trimmingRegistryWhitespace()
        guard let separator = trimmed.firstRange(of: "://") else {
            throw .invalidConfiguration("registry address \"\(text)\" has no scheme (expected scheme://…)")
        }
        let scheme = trimmed[..<separator.lowerBound].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "+" })
        else { throw .invalidConfiguration("registry address \"\(text)\" has an invalid scheme") }
        var rest = trimmed[separator.upperBound...]
        var parameters: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let key = parts.first, !key.isEmpty else { continue }
                parameters[String(key)] = parts.count > 1 ? String(parts[1]) : String(key)
            }
            rest = rest[..<question]
        }
        // A trailing path (`zookeeper://h:2181/`) carries nothing for registries.
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var hostList = rest
        if hostList.isEmpty, scheme == "direct", let listed = parameters["address"] { hostList = Substring(listed) }
        var hosts: [Host] = []
        for entry in hostList.isEmpty ? [] : hostList.split(separator: ",", omittingEmptySubsequences: false) {
            let entry = entry.trimmingRegistryWhitespace()
            guard !entry.isEmpty else {
                throw .invalidConfiguration("registry address \"\(text)\" has an empty host in its list")
            }
            hosts.append(try Self.host(entry, scheme: scheme, in: text))
        }
        self.init(scheme: scheme, hosts: hosts, parameters: parameters)
        switch scheme {
        case "local":
            guard hosts.isEmpty else {
                throw .invalidConfiguration("local:// takes no hosts: \"\(text)\"")
            }
        case "direct", "zookeeper", "consul":
            guard !hosts.isEmpty else {
                throw .invalidConfiguration("\(scheme):// needs at least one host:port: \"\(text)\"")
            }
            if scheme == "consul", hosts.count > 1 {
                throw .invalidConfiguration("consul:// takes one agent host:port: \"\(text)\"")
            }
        default:
            break
        }
    }

    private static func host(_ entry: Substring, scheme: String, in text: String) throws(RegistryError) -> Host {
        var host = entry
        var portText: Substring?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else {
                throw .invalidConfiguration("unclosed [ in \"\(entry)\" of \"\(text)\"")
            }
            host = entry[entry.index(after: entry.startIndex)..<close]
            let after = entry[entry.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw .invalidConfiguration("unexpected \"\(after)\" after the host in \"\(text)\"")
                }
                portText = after.dropFirst()
            }
        } else if let colon = entry.lastIndex(of: ":") {
            guard entry.firstIndex(of: ":") == colon else {
                throw .invalidConfiguration("IPv6 host \"\(entry)\" must be bracketed: [host]:port")
            }
            host = entry[..<colon]
            portText = entry[entry.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .invalidConfiguration("empty host in \"\(text)\"") }
        let port: Int
        if let portText {
            guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(portText), number > 0,
                number <= 65_535
            else {
                throw .invalidConfiguration("invalid port \"\(portText)\" in \"\(text)\" (1…65535)")
            }
            port = number
        } else if let fallback = defaultPorts[scheme] {
            port = fallback
        } else {
            throw .invalidConfiguration("\(scheme):// needs a port for \"\(host)\" in \"\(text)\"")
        }
        return Host(host: String(host), port: port)
    }

    public var description: String {
        var text = "\(scheme)://" + hosts.map(\.description).joined(separator: ",")
        if !parameters.isEmpty {
            text += "?" + parameters.keys.sorted().map { "\($0)=\(parameters[$0]!)" }.joined(separator: "&")
        }
        return text
    }

    /// The registry's own URL, as `Registry.url` reports it: the first host (the whole list is in
    /// the `address` parameter when there are several).
    public var url: MotanURL {
        var parameters = self.parameters
        if hosts.count > 1 { parameters["address"] = hosts.map(\.description).joined(separator: ",") }
        return MotanURL(
            protocol: scheme, host: hosts.first?.host ?? "", port: hosts.first?.port ?? 0, path: "",
            parameters: parameters)
    }
}

extension StringProtocol {
    fileprivate func trimmingRegistryWhitespace() -> SubSequence {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
