/// One Motan2 message with owned storage.
public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var meta: Meta
    /// The body as on the wire: gzip data when `header.flags` contains `.gzip`.
    public var body: [UInt8]

    public init(header: FrameHeader, meta: Meta = Meta(), body: [UInt8] = []) {
        self.header = header
        self.meta = meta
        self.body = body
    }

    @inlinable public var requestID: UInt64 { header.requestID }
    @inlinable public var isHeartbeat: Bool { header.isHeartbeat }
    @inlinable public var isResponse: Bool { header.isResponse }

    /// The body with gzip removed, bounded so that a small gzip bomb fails instead of exhausting
    /// memory.
    public func decodedBody(
        maxContentLength: Int = FrameDecoder.defaultMaxContentLength
    ) throws(MotanCodecError) -> [UInt8] {
        guard header.isGzipped else { return body }
        return try body.withBytes { (compressed) throws(MotanCodecError) in
            try Gzip.decompress(compressed, maxOutput: maxContentLength)
        }
    }

    /// The body's simple-serialized values (gunzipped first when needed), decoded within
    /// `budget`, by default the budget of `maxContentLength`.
    public func decodedValues(
        maxContentLength: Int = FrameDecoder.defaultMaxContentLength, budget: DecodeBudget? = nil,
        gzip: GzipContext? = nil
    ) throws(MotanCodecError) -> [SimpleValue] {
        try body.withBytes { (bytes) throws(MotanCodecError) in
            try SimpleSerialization.decodeBody(
                bytes, gzipped: header.isGzipped, maxContentLength: maxContentLength, budget: budget, gzip: gzip)
        }
    }

    /// The error carried by an exception response, nil for anything else. A missing or
    /// unparseable `M_e` still yields an error (a service exception holding the raw text).
    public var errorInfo: MotanErrorInfo? {
        guard header.isResponse, !header.isHeartbeat, header.isException else { return nil }
        return MotanErrorInfo(lenientJSON: meta.exception)
    }

    /// Bytes `FrameEncoder.encode` writes for this frame.
    public var encodedSize: Int { 21 + meta.encodedLength + body.count }
}
