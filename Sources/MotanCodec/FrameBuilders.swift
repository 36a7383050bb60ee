/// Frames built the way swift-motan sends them (spec README, "SENDS" column).
extension Frame {
    /// A simple-serialized request. Meta order: `M_p`, `M_m`, `M_g`, then `extraMeta` (whose
    /// copies of those keys are ignored). With `mingzSize` > 0 and a longer body the body is
    /// gzip-compressed; if compression fails it goes out plain.
    public static func request(
        requestID: UInt64, service: String, method: String, group: String? = nil,
        arguments: [SimpleValue] = [], extraMeta: Meta = Meta(), gzipAbove mingzSize: Int? = nil
    ) -> Frame {
        var meta = Meta()
        meta.append(MetaKey.service, service)
        meta.append(MetaKey.method, method)
        if let group { meta.append(MetaKey.group, group) }
        for (key, value) in extraMeta
        where key != MetaKey.service && key != MetaKey.method && key != MetaKey.group {
            meta.set(key, value)
        }
        var frame = Frame(header: FrameHeader(requestID: requestID), meta: meta)
        frame.setBody(SimpleSerialization.encode(arguments), gzipAbove: mingzSize)
        return frame
    }

    /// A normal response carrying one value; `.null` goes out as `00` (B = 1), as Java does.
    public static func response(
        requestID: UInt64, value: SimpleValue, processTime: Int = 0, extraMeta: Meta = Meta(),
        gzipAbove mingzSize: Int? = nil
    ) -> Frame {
        var meta = Meta()
        meta.append(MetaKey.processTime, String(processTime))
        for (key, value) in extraMeta where key != MetaKey.processTime && key != MetaKey.exception {
            meta.set(key, value)
        }
        var frame = Frame(header: FrameHeader(flags: .response, requestID: requestID), meta: meta)
        var body: [UInt8] = []
        SimpleSerialization.encode(value, into: &body)
        frame.setBody(body, gzipAbove: mingzSize)
        return frame
    }

    /// `0x12`, serialization 0x30, no meta, no body.
    public static func heartbeatRequest(requestID: UInt64) -> Frame {
        Frame(header: FrameHeader(flags: [.heartbeat, .proxy], requestID: requestID))
    }

    /// `0x13`, whatever form the request had.
    public static func heartbeatResponse(requestID: UInt64) -> Frame {
        Frame(header: FrameHeader(flags: [.heartbeat, .proxy, .response], requestID: requestID))
    }

    /// Status 1, `M_pt` (unless nil) then `M_e`, serialization 0x30, empty body.
    public static func errorResponse(
        requestID: UInt64, error: MotanErrorInfo, processTime: Int? = 0
    ) -> Frame {
        var meta = Meta()
        if let processTime { meta.append(MetaKey.processTime, String(processTime)) }
        meta.append(MetaKey.exception, error.json)
        return Frame(header: FrameHeader(flags: .response, status: 1, requestID: requestID), meta: meta)
    }

    /// Stores `body`, compressed when it is longer than `mingzSize` (> 0).
    public mutating func setBody(_ body: [UInt8], gzipAbove mingzSize: Int?) {
        if let mingzSize, mingzSize > 0, body.count > mingzSize,
            let compressed = try? Gzip.compress(body)
        {
            self.body = compressed
            header.flags.insert(.gzip)
        } else {
            self.body = body
            header.flags.remove(.gzip)
        }
    }
}
