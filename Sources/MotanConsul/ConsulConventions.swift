import MotanLoop
import MotanRegistry

/// Motan's Consul conventions (switcher-and-registries.md §6): names, ids, tags, and the way back
/// from a health entry to a Motan URL. Kept identical to the Java registry's for interoperability.
public enum ConsulConventions {
    public static let servicePrefix = "motanrpc_"
    public static let protocolTagPrefix = "protocol_"
    public static let urlTagPrefix = "URL_"

    /// `motanrpc_<group>`.
    public static func serviceName(group: String) -> String { servicePrefix + group }

    /// `<host>:<port>-<interface path>`.
    public static func serviceID(_ url: MotanURL) -> String { "\(url.host):\(url.port)-\(url.path)" }

    /// `protocol_<protocol>` and `URL_<URL-encoded URL>`.
    public static func tags(_ url: MotanURL) -> [String] {
        [protocolTagPrefix + url.protocol, urlTagPrefix + MotanURL.percentEncoded(url.description)]
    }

    static func registration(_ url: MotanURL, ttl: Duration) -> ConsulServiceRegistration {
        ConsulServiceRegistration(
            ID: serviceID(url), Name: serviceName(group: url.group), Tags: tags(url), Address: url.host,
            Port: url.port, Check: .init(TTL: goDuration(ttl)))
    }

    /// A Go duration string, as Consul parses them: `30s`, `1500ms`.
    public static func goDuration(_ duration: Duration) -> String {
        let ms = duration.roundedUpMilliseconds
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }

    /// The instance's URL: from its `URL_` tag, or else rebuilt the way Java does (protocol tag,
    /// address, port, and the path after the id's first `-`).
    static func url(of service: ConsulHealthEntry.Service, group: String) -> MotanURL? {
        let tags = service.Tags ?? []
        if let tag = tags.first(where: { $0.hasPrefix(urlTagPrefix) }),
            let url = MotanURL(parsing: formDecoded(tag.dropFirst(urlTagPrefix.count)))
        {
            return url
        }
        guard let protocolTag = tags.first(where: { $0.hasPrefix(protocolTagPrefix) }),
            let dash = service.ID.firstIndex(of: "-"), let host = service.Address, !host.isEmpty,
            let port = service.Port
        else { return nil }
        return MotanURL(
            protocol: String(protocolTag.dropFirst(protocolTagPrefix.count)), host: host, port: port,
            path: String(service.ID[service.ID.index(after: dash)...]),
            parameters: ["group": group, "nodeType": "service"])
    }

    /// `application/x-www-form-urlencoded` decoding (Java's URLDecoder): `+` is a space.
    static func formDecoded(_ text: Substring) -> String { MotanURL.percentDecoded(text) }
}
