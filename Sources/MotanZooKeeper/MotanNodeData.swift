import MotanRegistry

/// The data of a Motan node as the registries write it (spec: switcher-and-registries.md §5.1):
/// plain UTF-8 URL text (Java `zk`, motan-go, us) or a Java-serialized String (Java `zookeeper`).
enum MotanNodeData {
    /// What we write: the URL's text form, plain UTF-8.
    static func encode(_ url: MotanURL) -> [UInt8] { Array(url.description.utf8) }

    /// The text in either format; nil for a serialized object that is not a String.
    static func text(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 4, bytes[0] == 0xAC, bytes[1] == 0xED, bytes[2] == 0x00, bytes[3] == 0x05 else {
            return String(decoding: bytes, as: UTF8.self)
        }
        guard bytes.count >= 5 else { return nil }
        var length = 0
        var start = 0
        switch bytes[4] {
        case 0x74:  // TC_STRING: u16 length
            guard bytes.count >= 7 else { return nil }
            length = Int(bytes[5]) << 8 | Int(bytes[6])
            start = 7
        case 0x7C:  // TC_LONGSTRING: u64 length
            guard bytes.count >= 13 else { return nil }
            for i in 5..<13 { length = length << 8 | Int(bytes[i]) }
            start = 13
        default:
            return nil
        }
        guard length >= 0, bytes.count - start >= length else { return nil }
        // Modified UTF-8 equals UTF-8 for every character a URL can hold.
        return String(decoding: bytes[start..<start + length], as: UTF8.self)
    }

    /// The server URL a child node stands for. Missing or unparseable data gives a copy of the
    /// subscriber's URL with host and port from the child's name (port 80 when it has none).
    static func serverURL(child: String, data: [UInt8]?, subscriber: MotanURL) -> MotanURL {
        if let data, let text = text(data), let url = MotanURL(parsing: text), !url.host.isEmpty {
            return url
        }
        var url = subscriber
        if let colon = child.lastIndex(of: ":"), let port = Int(child[child.index(after: colon)...]) {
            url.host = String(child[..<colon])
            url.port = port
        } else {
            url.host = child
            url.port = 80
        }
        return url
    }
}
