import CLibUV

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A numeric IPv4 or IPv6 address and port. Only literal addresses (and `localhost`) are accepted:
/// name resolution would block the loop thread.
public struct TCPAddress: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host == "localhost" ? "127.0.0.1" : host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port` or `v6-literal` forms used on the command line.
    public init(parsing text: String) throws(LoopError) {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else {
                throw .invalidAddress(text)
            }
            self.init(host: host, port: port)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { throw .invalidAddress(text) }
        self.init(host: String(text[..<colon]), port: port)
    }

    public var isIPv6: Bool { host.contains(":") }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls `body` with a `sockaddr` for this address.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>) throws(LoopError) -> R) throws(LoopError)
        -> R
    {
        var storage = sockaddr_storage()
        let rc: Int32 = withUnsafeMutablePointer(to: &storage) { pointer in
            if isIPv6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    uv_ip6_addr(host, Int32(port), $0)
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                uv_ip4_addr(host, Int32(port), $0)
            }
        }
        guard rc == 0, (0...65535).contains(port) else { throw .invalidAddress(description) }
        return try withUnsafePointer(to: &storage) { (pointer) throws(LoopError) -> R in
            try body(UnsafeRawPointer(pointer).assumingMemoryBound(to: sockaddr.self))
        }
    }

    private static func string(fromCString chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    init?(_ storage: UnsafePointer<sockaddr_storage>) {
        var name = [CChar](repeating: 0, count: 64)
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            let port = storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                _ = withUnsafePointer(to: sin.pointee) { uv_ip4_name($0, &name, name.count) }
                return Int(UInt16(bigEndian: sin.pointee.sin_port))
            }
            self.init(host: Self.string(fromCString: name), port: port)
        case AF_INET6:
            let port = storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                _ = withUnsafePointer(to: sin.pointee) { uv_ip6_name($0, &name, name.count) }
                return Int(UInt16(bigEndian: sin.pointee.sin6_port))
            }
            self.init(host: Self.string(fromCString: name), port: port)
        default:
            return nil
        }
    }
}
