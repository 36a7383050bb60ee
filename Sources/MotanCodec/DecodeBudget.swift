/// How much one body may cost once decoded into `SimpleValue`s.
///
/// A length check on the body is not enough: a one-byte null becomes a value slot of 16 or more
/// bytes, and a few KiB of gzip inflate to millions of them. The budget charges every decoded
/// element `elementCost` bytes plus the payload of its strings and byte arrays, and stops the
/// decoder before the element that would go over either limit is built.
///
/// Elements are every tagged value (containers and their children included) and every string
/// inside a string map (2) or string array (4), keys and values separately.
public struct DecodeBudget: Sendable, Hashable {
    /// What one element is charged, in bytes: the `SimpleValue` slot (16–24 bytes in its array,
    /// a `SimplePair` holds two) plus a share of its array's header and growth slack.
    public static let elementCost = 32

    /// Below these, the derived limits are raised: a body of at most 1 KiB always fits, whatever
    /// its shape, so tiny content limits never reject on budget.
    public static let minimumElements = 1024
    public static let minimumBytes = 64 * 1024

    public var maxElements: Int
    /// Element charges plus string and byte-array payload bytes.
    public var maxBytes: Int

    public init(maxElements: Int, maxBytes: Int) {
        precondition(maxElements >= 0 && maxBytes >= 0, "decode budget limits must not be negative")
        self.maxElements = maxElements
        self.maxBytes = maxBytes
    }

    /// The budget for bodies of at most `contentLimit` bytes (after gunzip).
    ///
    /// - `maxElements = contentLimit / 8`: a body at the limit must average 8 wire bytes per
    ///   element, which strings (5 + length), containers (5 + content) and any 64-bit number
    ///   above 2^20 do; only a body of mostly nulls, bools, bytes and small integers is refused.
    /// - `maxBytes = 4 × contentLimit`: element charges are then at most 4 × the limit, and payload
    ///   never exceeds the body. The values of one request so cost at most about four times the
    ///   content limit on top of the body itself (10 MiB → 40 MiB), where unbudgeted one byte
    ///   could become 32 or more.
    public init(contentLimit: Int) {
        precondition(contentLimit >= 0, "contentLimit must not be negative")
        let (fourfold, overflow) = contentLimit.multipliedReportingOverflow(by: 4)
        self.init(
            maxElements: Swift.max(contentLimit / 8, Self.minimumElements),
            maxBytes: Swift.max(overflow ? Int.max : fourfold, Self.minimumBytes))
    }

    /// The budget for `FrameDecoder.defaultMaxContentLength`.
    public static let `default` = DecodeBudget(contentLimit: FrameDecoder.defaultMaxContentLength)

    /// No limit at all: only for trusted input.
    public static let unlimited = DecodeBudget(maxElements: .max, maxBytes: .max)
}
