import MotanCodec

/// A request as an on-loop handler sees it, arguments already decoded (a request whose
/// arguments cannot be decoded never reaches the handler: the dispatcher answers it with
/// errcode 500 "deserialize arguments fail.").
///
/// Noncopyable and passed `borrowing`: it refers to the connection's decode buffer, which is
/// reused once the handler returns, and the compiler keeps it from escaping the call (an
/// escaping closure cannot capture it). Use `makeOwned()` to keep the request longer.
public struct ServerRequest: ~Copyable {
    let frame: FrameView
    /// The decoded arguments.
    public let arguments: [SimpleValue]

    init(frame: FrameView, arguments: [SimpleValue]) {
        self.frame = frame
        self.arguments = arguments
    }

    /// Ends the request, handing its arguments array back for reuse.
    consuming func takeArguments() -> [SimpleValue] { arguments }

    public var requestID: UInt64 { frame.requestID }
    public var flags: MessageFlags { frame.flags }
    public var service: String { frame.service ?? "" }
    public var method: String { frame.method ?? "" }
    public var group: String? { frame.group }

    public func meta(_ key: String) -> String? { frame.metaString(forKey: key) }

    /// A copy that outlives the handler call, e.g. for a task that answers through a detached
    /// responder.
    public func makeOwned() -> ServiceRequest {
        ServiceRequest(
            requestID: requestID, service: service, method: method, group: group,
            meta: frame.makeFrame().meta, arguments: arguments)
    }
}

/// A request whose body the server has not decoded: for handlers that pass arguments through
/// or forward them, without paying for decoding. What the body holds is the handler's
/// business, including answering an error when it does not make sense of it.
///
/// Noncopyable and passed `borrowing`, like `ServerRequest`; the body is lent only inside
/// `withUnsafeBody`.
public struct RawServerRequest: ~Copyable {
    let frame: FrameView
    /// The server's content limit, which sets the decoding budget as for decoded handlers.
    let maxContentLength: Int

    init(frame: FrameView, maxContentLength: Int) {
        self.frame = frame
        self.maxContentLength = maxContentLength
    }

    public var requestID: UInt64 { frame.requestID }
    public var flags: MessageFlags { frame.flags }
    public var service: String { frame.service ?? "" }
    public var method: String { frame.method ?? "" }
    public var group: String? { frame.group }

    public func meta(_ key: String) -> String? { frame.metaString(forKey: key) }

    /// Whether the body is gzip data.
    public var isGzipped: Bool { frame.isGzipped }
    public var bodyCount: Int { frame.body.count }

    /// Lends the body as on the wire (gzip data when `isGzipped`); the pointer is valid only
    /// inside `body`.
    /// Decodes the arguments (gunzipping first if need be) as the server does for decoded
    /// handlers, within the same budget.
    public func decodeArguments() throws(MotanCodecError) -> [SimpleValue] {
        try ArgumentDecoding.decode(frame.body, isGzipped: frame.isGzipped, maxContentLength: maxContentLength)
    }

    /// Checks that a plain body decodes, within the budget decoded handlers get, without making
    /// any value; the ranges it returns are into the body. Nil for a gzipped body, which has no
    /// plain values to point at: use `decodeArguments()` for it.
    public func checkArguments() throws(MotanCodecError) -> SimpleBodyShape? {
        guard !frame.isGzipped else { return nil }
        return try SimpleSerialization.validate(frame.body, budget: DecodeBudget(contentLimit: maxContentLength))
    }

    public func withUnsafeBody<R, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(frame.body)
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

/// The one place request arguments are decoded, on the loop or in a task.
enum ArgumentDecoding {
    /// Gunzips (bounded by the content limit) and decodes within the codec's per-request budget
    /// (elements and bytes, derived from `maxContentLength`), so a small body cannot expand into
    /// unbounded values. Every failure, the budget's included, is a `MotanCodecError` and becomes
    /// the "deserialize arguments fail." answer.
    static func decode(
        _ body: UnsafeRawBufferPointer, isGzipped: Bool, maxContentLength: Int
    ) throws(MotanCodecError) -> [SimpleValue] {
        var values: [SimpleValue] = []
        try decode(body, isGzipped: isGzipped, maxContentLength: maxContentLength, into: &values)
        return values
    }

    static func decode(
        _ body: UnsafeRawBufferPointer, isGzipped: Bool, maxContentLength: Int, into values: inout [SimpleValue]
    ) throws(MotanCodecError) {
        try SimpleSerialization.decodeBody(
            body, gzipped: isGzipped, maxContentLength: maxContentLength, into: &values,
            budget: DecodeBudget(contentLimit: maxContentLength))
    }

    /// The answer to a request whose arguments could not be decoded, as motan-go words it.
    static func failure(_ error: MotanCodecError) -> MotanErrorInfo {
        MotanErrorInfo(
            errcode: ServerErrorCode.internalError, errmsg: "deserialize arguments fail. \(error)",
            errtype: MotanErrorInfo.serviceType)
    }
}
