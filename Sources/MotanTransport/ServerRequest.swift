import MotanCodec

/// A request as an on-loop handler sees it: a view into the connection's decode buffer.
/// Nothing is copied up front, so the fields cost only what the handler reads. Valid only
/// during the handler call; use `makeOwned()` to keep it longer.
public struct ServerRequest {
    let frame: FrameView
    let maxContentLength: Int

    init(frame: FrameView, maxContentLength: Int) {
        self.frame = frame
        self.maxContentLength = maxContentLength
    }

    public var requestID: UInt64 { frame.requestID }
    public var flags: MessageFlags { frame.flags }
    public var service: String { frame.metaString(forKey: MetaKey.service) ?? "" }
    public var method: String { frame.metaString(forKey: MetaKey.method) ?? "" }
    public var group: String? { frame.metaString(forKey: MetaKey.group) }

    public func meta(_ key: String) -> String? { frame.metaString(forKey: key) }

    /// The body as on the wire: gzip data when `isGzipped`.
    public var body: UnsafeRawBufferPointer { frame.body }
    public var isGzipped: Bool { frame.header.isGzipped }

    /// The arguments, gunzipped and decoded.
    public func arguments() throws(MotanCodecError) -> [SimpleValue] {
        if isGzipped {
            return try SimpleSerialization.decode(
                try Gzip.decompress(frame.body, maxOutput: maxContentLength))
        }
        return try SimpleSerialization.decode(frame.body)
    }

    /// A copy that outlives the handler call.
    public func makeOwned() throws(MotanCodecError) -> ServiceRequest {
        ServiceRequest(
            requestID: requestID, service: service, method: method, group: group,
            meta: frame.makeFrame().meta, arguments: try arguments())
    }
}

/// A request with owned storage, as async handlers receive it.
public struct ServiceRequest: Sendable {
    public var requestID: UInt64
    public var service: String
    public var method: String
    public var group: String?
    /// Every meta pair of the request, standard keys included.
    public var meta: Meta
    public var arguments: [SimpleValue]

    public init(
        requestID: UInt64, service: String, method: String, group: String? = nil, meta: Meta = Meta(),
        arguments: [SimpleValue]
    ) {
        self.requestID = requestID
        self.service = service
        self.method = method
        self.group = group
        self.meta = meta
        self.arguments = arguments
    }
}
