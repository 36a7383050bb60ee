/// Writes Motan2 frames by appending to a caller-owned buffer. Nothing here allocates once the
/// buffer has enough capacity: sizes that are only known afterwards are patched in place.
public enum FrameEncoder {
    /// Encodes `frame` as is. Meta pairs with an empty key or value (possible only in decoded
    /// meta) are left out, since the peers drop or mangle them.
    public static func encode(_ frame: Frame, into output: inout [UInt8]) {
        output.reserveCapacity(output.count + frame.encodedSize)
        appendHeader(frame.header, into: &output)
        let metaAt = reserveSize(&output)
        appendMeta(frame.meta, skipping: nil, into: &output)
        patchSize(at: metaAt, in: &output)
        frame.body.withUnsafeBytes { appendSized($0, into: &output) }
    }

    /// motan-go's form (`0x12`, serialization 0x30), which both originals accept.
    public static func encodeHeartbeatRequest(requestID: UInt64, into output: inout [UInt8]) {
        appendEmptyFrame(flags: [.heartbeat, .proxy], requestID: requestID, into: &output)
    }

    /// `0x13`, the answer motan-go gives to every heartbeat request.
    public static func encodeHeartbeatResponse(requestID: UInt64, into output: inout [UInt8]) {
        appendEmptyFrame(flags: [.heartbeat, .proxy, .response], requestID: requestID, into: &output)
    }

    /// A request whose body is already serialized (and already gzip data when
    /// `bodyIsGzipped`). Meta order is `M_p`, `M_m`, `M_g`, then `extraMeta` minus those keys.
    public static func encodeRequest(
        requestID: UInt64, service: String, method: String, group: String? = nil,
        extraMeta: Meta = Meta(), body: UnsafeRawBufferPointer, bodyIsGzipped: Bool = false,
        into output: inout [UInt8]
    ) {
        encodeRequest(
            requestID: requestID, service: service, method: method, group: group,
            extraMeta: extraMeta, bodyIsGzipped: bodyIsGzipped, into: &output
        ) { out in
            out.append(contentsOf: body.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// A request whose body `writeBody` appends straight into the output (for example with
    /// `SimpleSerialization.appendString`), so the arguments are never copied.
    public static func encodeRequest(
        requestID: UInt64, service: String, method: String, group: String? = nil,
        extraMeta: Meta = Meta(), bodyIsGzipped: Bool = false, into output: inout [UInt8],
        writeBody: (inout [UInt8]) -> Void
    ) {
        let header = FrameHeader(flags: bodyIsGzipped ? .gzip : [], requestID: requestID)
        appendHeader(header, into: &output)
        let metaAt = reserveSize(&output)
        var first = true
        appendPair(MetaKey.service, service, first: &first, into: &output)
        appendPair(MetaKey.method, method, first: &first, into: &output)
        if let group { appendPair(MetaKey.group, group, first: &first, into: &output) }
        appendMeta(extraMeta, skipping: .request, first: &first, into: &output)
        patchSize(at: metaAt, in: &output)
        let bodyAt = reserveSize(&output)
        writeBody(&output)
        patchSize(at: bodyAt, in: &output)
    }

    /// A normal response: `M_pt` first, then `extraMeta`. With `mingzSize` > 0 and a longer
    /// body the body is gzip-compressed into the output (through `gzip` when given, which
    /// spares zlib's allocations); if compression fails the body goes out plain, as Java does.
    public static func encodeResponse(
        requestID: UInt64, processTime: Int, body: UnsafeRawBufferPointer, mingzSize: Int = 0,
        extraMeta: Meta = Meta(), gzip: GzipContext? = nil, into output: inout [UInt8]
    ) {
        let headerAt = output.count
        var gzipped = false
        encodeResponse(requestID: requestID, processTime: processTime, extraMeta: extraMeta, into: &output) { out in
            if mingzSize > 0 && body.count > mingzSize, compress(body, with: gzip, into: &out) {
                gzipped = true
            } else {
                out.append(contentsOf: body.assumingMemoryBound(to: UInt8.self))
            }
        }
        // The flag is known only once compression has succeeded.
        if gzipped { output[headerAt + 2] |= MessageFlags.gzip.rawValue }
    }

    public static func encodeResponse(
        requestID: UInt64, processTime: Int, body: [UInt8], mingzSize: Int = 0,
        extraMeta: Meta = Meta(), gzip: GzipContext? = nil, into output: inout [UInt8]
    ) {
        body.withUnsafeBytes {
            encodeResponse(
                requestID: requestID, processTime: processTime, body: $0, mingzSize: mingzSize,
                extraMeta: extraMeta, gzip: gzip, into: &output)
        }
    }

    private static func compress(
        _ body: UnsafeRawBufferPointer, with context: GzipContext?, into output: inout [UInt8]
    ) -> Bool {
        do throws(MotanCodecError) {
            if let context {
                try context.compress(body, into: &output)
            } else {
                try Gzip.compress(body, into: &output)
            }
            return true
        } catch {
            return false
        }
    }

    /// A normal response whose body `writeBody` appends straight into the output.
    public static func encodeResponse(
        requestID: UInt64, processTime: Int, extraMeta: Meta = Meta(),
        into output: inout [UInt8], writeBody: (inout [UInt8]) -> Void
    ) {
        appendHeader(FrameHeader(flags: .response, requestID: requestID), into: &output)
        let metaAt = reserveSize(&output)
        var first = true
        appendProcessTime(processTime, first: &first, into: &output)
        appendMeta(extraMeta, skipping: .response, first: &first, into: &output)
        patchSize(at: metaAt, in: &output)
        let bodyAt = reserveSize(&output)
        writeBody(&output)
        patchSize(at: bodyAt, in: &output)
    }

    /// Status 1, serialization 0x30, `M_pt` (unless `processTime` is nil) then `M_e` with the
    /// members in motan-go's order, empty body.
    public static func encodeErrorResponse(
        requestID: UInt64, error: MotanErrorInfo, processTime: Int? = 0, extraMeta: Meta = Meta(),
        into output: inout [UInt8]
    ) {
        var (metaAt, first) = appendErrorPrologue(requestID: requestID, processTime: processTime, into: &output)
        error.appendJSON(into: &output)
        appendMeta(extraMeta, skipping: .response, first: &first, into: &output)
        patchSize(at: metaAt, in: &output)
        appendUInt32(0, into: &output)
    }

    /// The same exception response, with `errmsg` = `prefix` + `middle` + `suffix` written
    /// straight into the output, so that no String is built for it: `middle` is wire bytes,
    /// e.g. a service name. Bytes that are not ASCII are decoded as UTF-8 with replacement,
    /// exactly as a String made from them would be.
    public static func encodeErrorResponse(
        requestID: UInt64, errcode: Int, errtype: Int, messagePrefix: StaticString,
        messageMiddle middle: UnsafeRawBufferPointer, messageSuffix: StaticString, processTime: Int? = 0,
        into output: inout [UInt8]
    ) {
        let (metaAt, _) = appendErrorPrologue(requestID: requestID, processTime: processTime, into: &output)
        output.append(contentsOf: #"{"errcode":"#.utf8)
        appendDecimal(errcode, into: &output)
        output.append(contentsOf: #","errmsg":""#.utf8)
        appendEscaped(messagePrefix, into: &output)
        if middle.allSatisfy({ $0 < 0x80 }) {
            JSONText.appendEscaped(bytes: middle, into: &output)
        } else {
            JSONText.appendEscaped(String(decoding: middle, as: UTF8.self), into: &output)
        }
        appendEscaped(messageSuffix, into: &output)
        output.append(contentsOf: #"","errtype":"#.utf8)
        appendDecimal(errtype, into: &output)
        output.append(UInt8(ascii: "}"))
        patchSize(at: metaAt, in: &output)
        appendUInt32(0, into: &output)
    }

    /// What both exception encoders start with: the status-1 header, the meta's size slot, `M_pt`
    /// (unless nil) and the `M_e` key; the caller writes the JSON value. Returns the size slot and
    /// whether the meta is still empty.
    @inline(__always)
    private static func appendErrorPrologue(
        requestID: UInt64, processTime: Int?, into output: inout [UInt8]
    ) -> (metaAt: Int, first: Bool) {
        appendHeader(FrameHeader(flags: .response, status: 1, requestID: requestID), into: &output)
        let metaAt = reserveSize(&output)
        var first = true
        if let processTime { appendProcessTime(processTime, first: &first, into: &output) }
        appendSeparator(first: &first, into: &output)
        output.append(contentsOf: MetaKey.exception.utf8)
        output.append(MetaBytes.lf)
        return (metaAt, first)
    }

    private static func appendEscaped(_ text: StaticString, into output: inout [UInt8]) {
        text.withUTF8Buffer { JSONText.appendEscaped(bytes: $0, into: &output) }
    }

    // MARK: Pieces

    private static func appendEmptyFrame(
        flags: MessageFlags, requestID: UInt64, into output: inout [UInt8]
    ) {
        appendHeader(FrameHeader(flags: flags, requestID: requestID), into: &output)
        appendUInt32(0, into: &output)
        appendUInt32(0, into: &output)
    }

    static func appendHeader(_ header: FrameHeader, into output: inout [UInt8]) {
        output.append(0xF1)
        output.append(0xF1)
        output.append(header.flags.rawValue)
        output.append(header.versionStatusByte)
        output.append(header.serializationByte)
        SimpleSerialization.writeUInt64(header.requestID, to: &output)
    }

    private static func appendUInt32(_ value: UInt32, into output: inout [UInt8]) {
        SimpleSerialization.writeUInt32(value, to: &output)
    }

    private static func reserveSize(_ output: inout [UInt8]) -> Int {
        SimpleSerialization.reserveLength(&output)
    }

    private static func patchSize(at position: Int, in output: inout [UInt8]) {
        SimpleSerialization.patchLength(at: position, in: &output)
    }

    private static func appendSized(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        SimpleSerialization.writeLengthPrefixed(bytes, to: &output)
    }

    @inline(__always)
    private static func appendSeparator(first: inout Bool, into output: inout [UInt8]) {
        if first {
            first = false
        } else {
            output.append(MetaBytes.lf)
        }
    }

    private static func appendPair(
        _ key: String, _ value: String, first: inout Bool, into output: inout [UInt8]
    ) {
        // Unsendable values are dropped rather than corrupting the pairing.
        guard Meta.isSendable(value) else { return }
        appendSeparator(first: &first, into: &output)
        output.append(contentsOf: key.utf8)
        output.append(MetaBytes.lf)
        output.append(contentsOf: value.utf8)
    }

    private static func appendProcessTime(
        _ millis: Int, first: inout Bool, into output: inout [UInt8]
    ) {
        appendSeparator(first: &first, into: &output)
        output.append(contentsOf: MetaKey.processTime.utf8)
        output.append(MetaBytes.lf)
        appendDecimal(millis, into: &output)
    }

    /// Keys the dedicated encoders write themselves and so skip in `extraMeta`.
    enum ReservedKeys {
        case request, response

        /// Byte comparisons on purpose: this runs for every extra pair of every frame.
        func contains(_ key: UnsafeRawBufferPointer) -> Bool {
            guard key.count == 3 || key.count == 4, key[0] == UInt8(ascii: "M"), key[1] == UInt8(ascii: "_")
            else { return false }
            let third = key[2]
            switch self {
            case .request:
                return key.count == 3
                    && (third == UInt8(ascii: "p") || third == UInt8(ascii: "m") || third == UInt8(ascii: "g"))
            case .response:
                return key.count == 3
                    ? third == UInt8(ascii: "e")
                    : third == UInt8(ascii: "p") && key[3] == UInt8(ascii: "t")
            }
        }
    }

    private static func appendMeta(
        _ meta: Meta, skipping reserved: ReservedKeys?, into output: inout [UInt8]
    ) {
        var first = true
        appendMeta(meta, skipping: reserved, first: &first, into: &output)
    }

    private static func appendMeta(
        _ meta: Meta, skipping reserved: ReservedKeys?, first: inout Bool, into output: inout [UInt8]
    ) {
        if meta.isEmpty { return }
        if reserved == nil && !meta.hasEmptyField {
            appendSeparator(first: &first, into: &output)
            meta.withRawBytes { output.append(contentsOf: $0.assumingMemoryBound(to: UInt8.self)) }
            return
        }
        var isFirst = first
        meta.forEachSendablePair { key, value in
            if let reserved, reserved.contains(key) { return }
            appendSeparator(first: &isFirst, into: &output)
            output.append(contentsOf: key.assumingMemoryBound(to: UInt8.self))
            output.append(MetaBytes.lf)
            output.append(contentsOf: value.assumingMemoryBound(to: UInt8.self))
        }
        first = isFirst
    }
}

// MARK: In-place writers
//
// For servers that encode straight into their pooled write chunks: the caller reserves the
// exact size, so nothing here checks capacity, grows a buffer or allocates.
extension FrameEncoder {
    /// Bytes a heartbeat response takes: a header and two empty size fields.
    public static let heartbeatResponseSize = 21

    /// Writes the `0x13` heartbeat answer carrying `requestID`; returns the bytes written.
    @discardableResult
    public static func writeHeartbeatResponse(requestID: UInt64, to output: UnsafeMutableRawPointer) -> Int {
        writeHeader(
            flags: [.heartbeat, .proxy, .response], status: 0, requestID: requestID, to: output)
        output.storeBytes(of: 0, toByteOffset: 13, as: UInt64.self)
        return heartbeatResponseSize
    }

    /// Bytes of a normal response's header, size fields and `M_pt` meta: all of it but the body.
    public static func responseOverhead(processTime: Int) -> Int {
        // header, meta size, "M_pt" LF digits, body size
        FrameHeader.size + 4 + 4 + 1 + decimalCount(processTime) + 4
    }

    /// Writes a normal response's header, `M_pt` meta and body size field, for a body of
    /// `bodyCount` bytes that the caller writes right after; returns the bytes written, which
    /// are `responseOverhead(processTime:)`.
    @discardableResult
    public static func writeResponseHead(
        requestID: UInt64, processTime: Int, bodyCount: Int, gzipped: Bool = false,
        to output: UnsafeMutableRawPointer
    ) -> Int {
        writeHeader(flags: gzipped ? [.response, .gzip] : .response, status: 0, requestID: requestID, to: output)
        var position = FrameHeader.size + 4
        // "M_pt" LF
        output.storeBytes(of: UInt32(0x4D5F_7074).bigEndian, toByteOffset: position, as: UInt32.self)
        output.storeBytes(of: MetaBytes.lf, toByteOffset: position + 4, as: UInt8.self)
        position += 5
        position += writeDecimal(processTime, to: output + position)
        let metaCount = position - FrameHeader.size - 4
        output.storeBytes(
            of: UInt32(truncatingIfNeeded: metaCount).bigEndian, toByteOffset: FrameHeader.size, as: UInt32.self)
        precondition(UInt32(exactly: bodyCount) != nil, "body of \(bodyCount) bytes does not fit a frame")
        output.storeBytes(of: UInt32(truncatingIfNeeded: bodyCount).bigEndian, toByteOffset: position, as: UInt32.self)
        return position + 4
    }

    @inline(__always)
    static func writeHeader(flags: MessageFlags, status: UInt8, requestID: UInt64, to output: UnsafeMutableRawPointer) {
        let header = FrameHeader(flags: flags, status: status, requestID: requestID)
        output.storeBytes(of: 0xF1, toByteOffset: 0, as: UInt8.self)
        output.storeBytes(of: 0xF1, toByteOffset: 1, as: UInt8.self)
        output.storeBytes(of: header.flags.rawValue, toByteOffset: 2, as: UInt8.self)
        output.storeBytes(of: header.versionStatusByte, toByteOffset: 3, as: UInt8.self)
        output.storeBytes(of: header.serializationByte, toByteOffset: 4, as: UInt8.self)
        output.storeBytes(of: requestID.bigEndian, toByteOffset: 5, as: UInt64.self)
    }

    static func decimalCount(_ value: Int) -> Int {
        var count = value < 0 ? 2 : 1
        var magnitude = value.magnitude / 10
        while magnitude > 0 {
            count += 1
            magnitude /= 10
        }
        return count
    }

    static func writeDecimal(_ value: Int, to output: UnsafeMutableRawPointer) -> Int {
        let count = decimalCount(value)
        var magnitude = value.magnitude
        var index = count - 1
        repeat {
            output.storeBytes(of: UInt8(ascii: "0") + UInt8(magnitude % 10), toByteOffset: index, as: UInt8.self)
            magnitude /= 10
            index -= 1
        } while magnitude > 0
        if value < 0 { output.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 0, as: UInt8.self) }
        return count
    }
}
