/// Header fields in arrival order; names compare case-insensitively, as HTTP requires.
public struct LoopHTTPHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var fields: [Field] = []

    public init() {}
    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    public mutating func add(_ name: String, _ value: String) { fields.append(Field(name: name, value: value)) }

    /// Replaces every field of that name with one.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.lowercasedASCII == name.lowercasedASCII }
    }

    /// The first value of `name`.
    public subscript(name: String) -> String? {
        let key = name.lowercasedASCII
        return fields.first { $0.name.lowercasedASCII == key }?.value
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        let key = name.lowercasedASCII
        return fields.filter { $0.name.lowercasedASCII == key }.map(\.value)
    }

    /// True when a comma-separated header (`Connection`, `Transfer-Encoding`) lists `token`.
    public func contains(_ name: String, token: String) -> Bool {
        let wanted = token.lowercasedASCII
        return values(name).contains { value in
            value.split(separator: ",").contains { $0.trimmingSpaces.lowercasedASCII == wanted }
        }
    }
}

/// An HTTP/1.1 request: method, target (path and query as sent), headers, whole body.
public struct LoopHTTPRequest: Sendable, Hashable {
    public var method: String
    /// The request target as it appears on the request line, e.g. `/v1/health/service/x?passing`.
    public var target: String
    public var headers: LoopHTTPHeaders
    public var body: [UInt8]
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    public var minorVersion: Int

    public init(
        method: String, target: String, headers: LoopHTTPHeaders = [:], body: [UInt8] = [], minorVersion: Int = 1
    ) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.minorVersion = minorVersion
    }

    /// The target before `?`, percent-escapes left as sent.
    public var path: Substring {
        target.firstIndex(of: "?").map { target[..<$0] } ?? target[...]
    }

    /// The query's `key=value` pairs in order; a bare key has a nil value. Percent-escapes decoded.
    public var queryItems: [(name: String, value: String?)] {
        guard let question = target.firstIndex(of: "?") else { return [] }
        return target[target.index(after: question)...].split(separator: "&").map { pair in
            if let equals = pair.firstIndex(of: "=") {
                return (
                    LoopHTTPPercent.decode(pair[..<equals]),
                    LoopHTTPPercent.decode(pair[pair.index(after: equals)...])
                )
            }
            return (LoopHTTPPercent.decode(pair), nil)
        }
    }

    /// Whether the connection may carry another request after this one.
    public var keepAlive: Bool {
        if headers.contains("Connection", token: "close") { return false }
        return minorVersion >= 1 || headers.contains("Connection", token: "keep-alive")
    }
}

/// An HTTP/1.1 response with its whole body.
public struct LoopHTTPResponse: Sendable, Hashable {
    public var status: Int
    public var reason: String
    public var headers: LoopHTTPHeaders
    public var body: [UInt8]
    public var minorVersion: Int

    public init(
        status: Int, reason: String? = nil, headers: LoopHTTPHeaders = [:], body: [UInt8] = [],
        minorVersion: Int = 1
    ) {
        self.status = status
        self.reason = reason ?? LoopHTTPResponse.reasonPhrase(status)
        self.headers = headers
        self.body = body
        self.minorVersion = minorVersion
    }

    /// A response with a UTF-8 body and its content type.
    public init(status: Int, text: String, contentType: String = "text/plain; charset=utf-8") {
        self.init(status: status, headers: ["Content-Type": contentType], body: Array(text.utf8))
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// Whether the connection may carry another request after this response.
    public var keepAlive: Bool {
        if headers.contains("Connection", token: "close") { return false }
        return minorVersion >= 1 || headers.contains("Connection", token: "keep-alive")
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status \(status)"
        }
    }
}

/// `%XX` escapes for request targets (RFC 3986; `+` is left alone, as it is not a space in paths).
public enum LoopHTTPPercent {
    public static func decode(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "%"), utf8.count >= 2,
                let high = hexValue(utf8[utf8.startIndex]), let low = hexValue(utf8[utf8.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Escapes everything but RFC 3986's unreserved characters and those in `keeping`.
    public static func encode(_ text: String, keeping allowed: String = "") -> String {
        let keep = Set(allowed.utf8)
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case _ where keep.contains(byte):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += byte < 16 ? "%0\(hex)" : "%\(hex)"
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension StringProtocol {
    var lowercasedASCII: String {
        String(
            decoding: utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 },
            as: UTF8.self)
    }

    var trimmingSpaces: SubSequence {
        let start = firstIndex { $0 != " " && $0 != "\t" } ?? endIndex
        let end = lastIndex { $0 != " " && $0 != "\t" }.map { index(after: $0) } ?? start
        return self[start..<end]
    }
}
