/// Everything the codec can reject, with the position of the offending byte.
///
/// Offsets of framing errors count bytes from the start of the stream the decoder was fed, so a
/// log line can point at the exact spot in a capture. Offsets of simple-serialization errors count
/// from the start of the body; gzip offsets count compressed input bytes.
public enum MotanCodecError: Error, Equatable, Sendable, CustomStringConvertible {
    // Framing errors: the connection cannot be resynchronised and must be closed.
    case badMagic(found: UInt16, offset: Int)
    case motanV1NotSupported(offset: Int)
    case unsupportedVersion(UInt8, offset: Int)
    case metaTooLarge(size: UInt32, limit: Int, offset: Int)
    case bodyTooLarge(size: UInt32, limit: Int, offset: Int)
    case unpairedMeta(fieldCount: Int, offset: Int)
    /// The stream ended inside the meta block.
    case truncatedMeta(declared: Int, received: Int, offset: Int)
    /// The stream ended inside the header, a size field or the body.
    case truncatedFrame(needed: Int, received: Int, offset: Int)

    // Simple serialization (id 6) errors: the frame is intact, the request gets an error reply.
    case simpleUnknownTag(UInt8, offset: Int)
    /// A value needs more bytes than its body or enclosing container has left.
    case simpleTruncated(needed: Int, available: Int, offset: Int)
    case simpleVarintOverflow(offset: Int)
    case simpleDepthLimitExceeded(limit: Int, offset: Int)
    /// The element at `offset` would be one more than `DecodeBudget.maxElements`.
    case simpleElementLimitExceeded(limit: Int, offset: Int)
    /// The element at `offset` would take the decoded size past `DecodeBudget.maxBytes`.
    case simpleDecodedSizeLimitExceeded(limit: Int, offset: Int)

    // Gzip errors.
    case gzipCorrupt(zlibCode: Int32, offset: Int)
    case gzipTruncated(offset: Int)
    case gzipOutputTooLarge(limit: Int)
    case gzipCompressionFailed(zlibCode: Int32)

    /// True for errors after which the byte stream cannot be trusted any more.
    public var isFramingError: Bool {
        switch self {
        case .badMagic, .motanV1NotSupported, .unsupportedVersion, .metaTooLarge, .bodyTooLarge,
            .unpairedMeta, .truncatedMeta, .truncatedFrame:
            return true
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .badMagic(let found, let offset):
            return
                "bad magic 0x\(hex(UInt64(found), width: 4)) at stream offset \(offset), expected 0xf1f1"
        case .motanV1NotSupported(let offset):
            return "Motan V1 not supported (version 0 at stream offset \(offset))"
        case .unsupportedVersion(let version, let offset):
            return
                "unsupported protocol version \(version) at stream offset \(offset), only Motan2 (1) is accepted"
        case .metaTooLarge(let size, let limit, let offset):
            return "meta size \(size) at stream offset \(offset) exceeds the limit of \(limit) bytes"
        case .bodyTooLarge(let size, let limit, let offset):
            return "body size \(size) at stream offset \(offset) exceeds the limit of \(limit) bytes"
        case .unpairedMeta(let fieldCount, let offset):
            return "meta at stream offset \(offset) has \(fieldCount) fields, not key/value pairs"
        case .truncatedMeta(let declared, let received, let offset):
            return
                "stream ended inside the meta at offset \(offset): \(received) of \(declared) bytes received"
        case .truncatedFrame(let needed, let received, let offset):
            return
                "stream ended inside the frame at offset \(offset): \(received) of \(needed) bytes received"
        case .simpleUnknownTag(let tag, let offset):
            return "simple serialization: unknown tag \(tag) at body offset \(offset)"
        case .simpleTruncated(let needed, let available, let offset):
            return
                "simple serialization: value at body offset \(offset) needs \(needed) bytes, only \(available) left"
        case .simpleVarintOverflow(let offset):
            return "simple serialization: varint at body offset \(offset) overflows 64 bits"
        case .simpleDepthLimitExceeded(let limit, let offset):
            return "simple serialization: nesting deeper than \(limit) at body offset \(offset)"
        case .simpleElementLimitExceeded(let limit, let offset):
            return "simple serialization: more than \(limit) elements, at body offset \(offset)"
        case .simpleDecodedSizeLimitExceeded(let limit, let offset):
            return
                "simple serialization: decoded values exceed the budget of \(limit) bytes at body offset \(offset)"
        case .gzipCorrupt(let code, let offset):
            return "gzip body is corrupt (zlib error \(code)) at compressed offset \(offset)"
        case .gzipTruncated(let offset):
            return "gzip body ends early at compressed offset \(offset)"
        case .gzipOutputTooLarge(let limit):
            return "gzip body inflates to more than the limit of \(limit) bytes"
        case .gzipCompressionFailed(let code):
            return "gzip compression failed (zlib error \(code))"
        }
    }
}

func hex(_ value: UInt64, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
