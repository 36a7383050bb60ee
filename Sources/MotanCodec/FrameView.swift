/// A borrowed view of one complete frame inside the decoder's buffer. Nothing is copied; the
/// pointers are valid only inside the `FrameDecoder.withNext` closure that received the view.
public struct FrameView {
    public let header: FrameHeader
    /// The meta block without the tolerated trailing LF.
    public let metaBytes: UnsafeRawBufferPointer
    /// The body as on the wire (gzip data when the gzip flag is set).
    public let body: UnsafeRawBufferPointer
    /// Stream offset of the frame's first byte.
    public let streamOffset: Int
    /// Found by the decoder's one pass over the meta block.
    let metaShape: MetaBytes.Shape
    var metaHasEmptyField: Bool { metaShape.hasEmptyField }

    @inlinable public var flags: MessageFlags { header.flags }
    @inlinable public var requestID: UInt64 { header.requestID }
    // Bit tests on the raw byte: the `MessageFlags` statics cost a lazy-global check per use
    // from another module, and these run for every frame.
    @inlinable public var isHeartbeat: Bool { header.flags.rawValue & 0x10 != 0 }
    @inlinable public var isResponse: Bool { header.flags.rawValue & 0x01 != 0 }
    @inlinable public var isGzipped: Bool { header.flags.rawValue & 0x08 != 0 }
    @inlinable public var isOneway: Bool { header.flags.rawValue & 0x04 != 0 }

    /// The body's simple-serialized values (gunzipped first when needed), decoded within
    /// `budget`, by default the budget of `maxContentLength`. Pass the loop's `GzipContext` to
    /// keep zlib from allocating.
    public func decodedValues(
        maxContentLength: Int, budget: DecodeBudget? = nil, gzip: GzipContext? = nil
    ) throws(MotanCodecError) -> [SimpleValue] {
        try SimpleSerialization.decodeBody(
            body, gzipped: header.isGzipped, maxContentLength: maxContentLength, budget: budget, gzip: gzip)
    }

    /// The value of the last `M_p` pair, found without another scan of the meta.
    public var serviceBytes: UnsafeRawBufferPointer? { routingValue(metaShape.service) }
    /// The value of the last `M_m` pair, found without another scan of the meta.
    public var methodBytes: UnsafeRawBufferPointer? { routingValue(metaShape.method) }
    /// The value of the last `M_g` pair, found without another scan of the meta.
    public var groupBytes: UnsafeRawBufferPointer? { routingValue(metaShape.group) }

    public var service: String? { metaShape.service.map { MetaBytes.string(metaBytes, $0) } }
    public var method: String? { metaShape.method.map { MetaBytes.string(metaBytes, $0) } }
    public var group: String? { metaShape.group.map { MetaBytes.string(metaBytes, $0) } }

    @inline(__always)
    private func routingValue(_ range: Range<Int>?) -> UnsafeRawBufferPointer? {
        guard let range else { return nil }
        return UnsafeRawBufferPointer(start: metaBytes.baseAddress.map { $0 + range.lowerBound }, count: range.count)
    }

    /// The value bytes of the last pair with this key.
    public func metaValue(forKey key: String) -> UnsafeRawBufferPointer? {
        MetaBytes.lastValue(forKey: key, in: metaBytes).map {
            UnsafeRawBufferPointer(rebasing: metaBytes[$0])
        }
    }

    public func metaString(forKey key: String) -> String? {
        MetaBytes.lastValue(forKey: key, in: metaBytes).map { MetaBytes.string(metaBytes, $0) }
    }

    /// Visits every pair in wire order.
    public func forEachMetaPair(
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void
    ) {
        let bytes = metaBytes
        MetaBytes.forEachPair(in: bytes) { key, value in
            body(
                UnsafeRawBufferPointer(rebasing: bytes[key]), UnsafeRawBufferPointer(rebasing: bytes[value])
            )
            return true
        }
    }

    /// Copies the frame out with one allocation: the meta block is stored in the spare capacity
    /// of the body array, and `Meta` keeps that array alive. Copy-on-write guarantees that no
    /// mutation of the body can reach those bytes while the meta still references them.
    public func makeFrame() -> Frame {
        let metaLength = metaBytes.count
        let bodyLength = body.count
        guard bodyLength > 0 else {
            let meta =
                metaLength == 0
                ? Meta() : Meta(validatedBlock: metaBytes, hasEmptyField: metaHasEmptyField)
            return Frame(header: header, meta: meta, body: [])
        }
        let source = body
        let metaSource = metaBytes
        let storage = [UInt8](unsafeUninitializedCapacity: bodyLength + metaLength) {
            buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: bodyLength)
            if metaLength > 0 {
                (raw.baseAddress! + bodyLength).copyMemory(
                    from: metaSource.baseAddress!, byteCount: metaLength)
            }
            initialized = bodyLength
        }
        let meta =
            metaLength == 0
            ? Meta()
            : Meta(
                sharing: storage, start: bodyLength, length: metaLength,
                hasEmptyField: metaHasEmptyField)
        return Frame(header: header, meta: meta, body: storage)
    }
}
