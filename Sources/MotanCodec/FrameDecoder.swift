/// Incremental Motan2 frame decoder: feed it bytes as they arrive, in any split, and take out
/// complete frames.
///
/// Every size field is checked against `maxContentLength` as soon as its bytes are in, before
/// any storage for the content is set aside, and magic and version are checked as soon as their
/// bytes are in, so a stream that is not Motan2 is rejected after at most four bytes. The first
/// error is sticky: the stream cannot be resynchronised, the connection has to be closed.
public struct FrameDecoder: Sendable {
    public static let defaultMaxContentLength = 10 * 1024 * 1024

    /// Applied separately to the meta size and to the body size, as both reference
    /// implementations do.
    public let maxContentLength: Int

    private var buffer: [UInt8] = []
    /// First byte of the frame being decoded.
    private var readIndex = 0
    /// Stream offset of `buffer[0]`.
    private var bufferStreamOffset = 0
    private var failure: MotanCodecError?
    /// Meta shape of the frame at `readIndex`, kept so that a large meta is scanned once even
    /// when its body trickles in.
    private var checkedMeta: MetaBytes.Shape?

    public init(maxContentLength: Int = FrameDecoder.defaultMaxContentLength) {
        precondition(maxContentLength >= 0, "maxContentLength must not be negative")
        self.maxContentLength = maxContentLength
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Stream offset of the next frame to be decoded.
    public var streamOffset: Int { bufferStreamOffset + readIndex }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, failure == nil else { return }
        compact()
        buffer.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    public mutating func feed(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// Drops consumed bytes but keeps the capacity, so a steady stream needs no allocation.
    private mutating func compact() {
        guard readIndex > 0 else { return }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
        } else {
            buffer.removeSubrange(0..<readIndex)
        }
        bufferStreamOffset += readIndex
        readIndex = 0
    }

    /// The next complete frame as an owned value, or nil when more bytes are needed.
    public mutating func next() throws(MotanCodecError) -> Frame? {
        guard let layout = try locateFrame() else { return nil }
        let frame = buffer.withUnsafeBytes { view(of: layout, in: $0, streamBase: bufferStreamOffset).makeFrame() }
        consume(layout)
        return frame
    }

    /// Hands the next complete frame to `body` without copying it; returns nil when more bytes
    /// are needed. The frame counts as consumed once `body` returns. Errors thrown here are
    /// framing errors only; a body that can fail returns a `Result`.
    public mutating func withNext<R>(_ body: (FrameView) -> R) throws(MotanCodecError) -> R? {
        guard let layout = try locateFrame() else { return nil }
        let result = buffer.withUnsafeBytes { body(view(of: layout, in: $0, streamBase: bufferStreamOffset)) }
        consume(layout)
        return result
    }

    /// Feeds `bytes` and hands every complete frame to `body`, in order, until `body` returns
    /// false. Frames that lie whole in `bytes` are lent where they are; only what is left over
    /// is copied into the decoder: the start of a frame that is not complete yet, or every byte
    /// after the frame `body` stopped at (take those later with `withNext` or another
    /// `decode`). A frame begun in an earlier call is completed by copying just the bytes it
    /// lacks. Throws the first framing error, after `body` has seen every frame before it.
    public mutating func decode(
        _ bytes: UnsafeRawBufferPointer, _ body: (FrameView) -> Bool
    ) throws(MotanCodecError) {
        if let failure { throw failure }
        var position = 0
        // Frames still buffered (a partial one, or ones left after a stop) come first.
        while bufferedByteCount > 0 {
            if let layout = try locateFrame() {
                let proceed = buffer.withUnsafeBytes {
                    body(view(of: layout, in: $0, streamBase: bufferStreamOffset))
                }
                consume(layout)
                if !proceed {
                    appendRest(of: bytes, from: position)
                    return
                }
                continue
            }
            guard position < bytes.count else { return }
            let wanted = bytesWanted()
            let take = Swift.min(wanted, bytes.count - position)
            compact()
            buffer.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + take)])
                    .assumingMemoryBound(to: UInt8.self))
            position += take
        }
        // Nothing buffered: decode in place.
        compact()
        let inPlaceStart = position
        let streamBase = bufferStreamOffset - inPlaceStart
        var checked: MetaBytes.Shape? = nil
        do {
            while position < bytes.count {
                guard
                    let layout = try Self.parseLayout(
                        in: bytes, at: position, streamBase: streamBase, maxContentLength: maxContentLength,
                        checkedMeta: &checked)
                else { break }
                let proceed = body(view(of: layout, in: bytes, streamBase: streamBase))
                position = layout.end
                checked = nil
                if !proceed { break }
            }
        } catch {
            bufferStreamOffset += position - inPlaceStart
            throw fail(error)
        }
        bufferStreamOffset += position - inPlaceStart
        if position < bytes.count {
            // The first bytes of a frame, whose meta may already be known to be good.
            checkedMeta = checked
            appendRest(of: bytes, from: position)
        }
    }

    private mutating func appendRest(of bytes: UnsafeRawBufferPointer, from position: Int) {
        guard position < bytes.count else { return }
        compact()
        buffer.append(
            contentsOf: UnsafeRawBufferPointer(rebasing: bytes[position...]).assumingMemoryBound(to: UInt8.self))
    }

    /// How many more bytes the buffered frame needs before it can be located or decoded; only
    /// called when `locateFrame` returned nil, so every size field read here has been checked.
    private func bytesWanted() -> Int {
        let available = bufferedByteCount
        guard available >= 17 else { return 17 - available }
        let metaLength = Int(readUInt32(at: readIndex + 13))
        guard available >= 21 + metaLength else { return 21 + metaLength - available }
        let bodyLength = Int(readUInt32(at: readIndex + 17 + metaLength))
        return Swift.max(1, 21 + metaLength + bodyLength - available)
    }

    /// Call when the peer closed the stream: throws if it ended inside a frame.
    public mutating func finish() throws(MotanCodecError) {
        if try locateFrame() != nil { return }
        let available = bufferedByteCount
        guard available > 0 else { return }
        let start = streamOffset
        guard available >= 17 else {
            throw fail(.truncatedFrame(needed: 17, received: available, offset: start))
        }
        let metaSize = Int(readUInt32(at: readIndex + 13))
        guard available >= 17 + metaSize else {
            throw fail(.truncatedMeta(declared: metaSize, received: available - 17, offset: start + 17))
        }
        guard available >= 21 + metaSize else {
            throw fail(.truncatedFrame(needed: 21 + metaSize, received: available, offset: start))
        }
        let bodySize = Int(readUInt32(at: readIndex + 17 + metaSize))
        throw fail(
            .truncatedFrame(needed: 21 + metaSize + bodySize, received: available, offset: start))
    }

    private mutating func fail(_ error: MotanCodecError) -> MotanCodecError {
        failure = error
        return error
    }

    struct Layout {
        var header: FrameHeader
        var start: Int
        var meta: MetaBytes.Shape
        var bodyStart: Int
        var bodyLength: Int
        var end: Int { bodyStart + bodyLength }
    }

    private mutating func locateFrame() throws(MotanCodecError) -> Layout? {
        if let failure { throw failure }
        do {
            let start = readIndex
            let streamBase = bufferStreamOffset
            let limit = maxContentLength
            var checked = checkedMeta
            let layout = try buffer.withBytes { (bytes) throws(MotanCodecError) in
                try Self.parseLayout(
                    in: bytes, at: start, streamBase: streamBase, maxContentLength: limit, checkedMeta: &checked)
            }
            checkedMeta = checked
            return layout
        } catch {
            throw fail(error)
        }
    }

    /// Locates the frame starting at `start` in `bytes` (whose first byte is at stream offset
    /// `streamBase`); nil when it is not complete yet. `checkedMeta` carries the meta's shape
    /// between calls for a frame that arrives in pieces.
    private static func parseLayout(
        in bytes: UnsafeRawBufferPointer, at start: Int, streamBase: Int, maxContentLength: Int,
        checkedMeta: inout MetaBytes.Shape?
    ) throws(MotanCodecError) -> Layout? {
        let available = bytes.count - start
        let offset = streamBase + start
        guard available >= 2, let base = bytes.baseAddress else { return nil }
        let frame = base + start
        let magic = UInt16(frame.load(as: UInt8.self)) << 8 | UInt16(frame.load(fromByteOffset: 1, as: UInt8.self))
        guard magic == FrameHeader.magic else { throw .badMagic(found: magic, offset: offset) }
        guard available >= 4 else { return nil }
        let versionStatus = frame.load(fromByteOffset: 3, as: UInt8.self)
        let version = versionStatus >> 3
        guard version == FrameHeader.motan2Version else {
            if version == 0 { throw .motanV1NotSupported(offset: offset + 3) }
            throw .unsupportedVersion(version, offset: offset + 3)
        }
        guard available >= 17 else { return nil }
        let metaSize = loadUInt32(frame + 13)
        guard UInt64(metaSize) <= UInt64(maxContentLength) else {
            throw .metaTooLarge(size: metaSize, limit: maxContentLength, offset: offset + 13)
        }
        let metaLength = Int(metaSize)
        guard available >= 17 + metaLength else { return nil }
        let shape: MetaBytes.Shape
        if let checkedMeta {
            shape = checkedMeta
        } else {
            shape = MetaBytes.shape(of: UnsafeRawBufferPointer(start: frame + 17, count: metaLength))
            guard shape.fieldCount % 2 == 0 else {
                throw .unpairedMeta(fieldCount: shape.fieldCount, offset: offset + 17)
            }
            checkedMeta = shape
        }
        guard available >= 21 + metaLength else { return nil }
        let bodySize = loadUInt32(frame + 17 + metaLength)
        guard UInt64(bodySize) <= UInt64(maxContentLength) else {
            throw .bodyTooLarge(size: bodySize, limit: maxContentLength, offset: offset + 17 + metaLength)
        }
        let bodyLength = Int(bodySize)
        guard available >= 21 + metaLength + bodyLength else { return nil }

        let header = FrameHeader(
            flags: MessageFlags(rawValue: frame.load(fromByteOffset: 2, as: UInt8.self)),
            version: version,
            status: versionStatus & 0x07,
            serialization: frame.load(fromByteOffset: 4, as: UInt8.self) >> 3,
            requestID: UInt64(bigEndian: frame.loadUnaligned(fromByteOffset: 5, as: UInt64.self)))
        return Layout(
            header: header, start: start, meta: shape,
            bodyStart: start + 21 + metaLength, bodyLength: bodyLength)
    }

    @inline(__always)
    private static func loadUInt32(_ pointer: UnsafeRawPointer) -> UInt32 {
        UInt32(bigEndian: pointer.loadUnaligned(as: UInt32.self))
    }

    private func view(of layout: Layout, in bytes: UnsafeRawBufferPointer, streamBase: Int) -> FrameView {
        let base = bytes.baseAddress!
        return FrameView(
            header: layout.header,
            metaBytes: UnsafeRawBufferPointer(start: base + layout.start + 17, count: layout.meta.length),
            body: UnsafeRawBufferPointer(start: base + layout.bodyStart, count: layout.bodyLength),
            streamOffset: streamBase + layout.start,
            metaShape: layout.meta)
    }

    private mutating func consume(_ layout: Layout) {
        readIndex = layout.end
        checkedMeta = nil
        if readIndex == buffer.count {
            // Nothing left over: reset now so the next feed does not have to.
            buffer.removeAll(keepingCapacity: true)
            bufferStreamOffset += readIndex
            readIndex = 0
        }
    }

    @inline(__always)
    private func readUInt32(at index: Int) -> UInt32 {
        UInt32(buffer[index]) << 24 | UInt32(buffer[index + 1]) << 16 | UInt32(buffer[index + 2]) << 8
            | UInt32(buffer[index + 3])
    }
}
