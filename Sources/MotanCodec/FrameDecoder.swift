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
        let frame = buffer.withUnsafeBytes { view(of: layout, in: $0).makeFrame() }
        consume(layout)
        return frame
    }

    /// Hands the next complete frame to `body` without copying it; returns nil when more bytes
    /// are needed. The frame counts as consumed once `body` returns. Errors thrown here are
    /// framing errors only; a body that can fail returns a `Result`.
    public mutating func withNext<R>(_ body: (FrameView) -> R) throws(MotanCodecError) -> R? {
        guard let layout = try locateFrame() else { return nil }
        let result = buffer.withUnsafeBytes { body(view(of: layout, in: $0)) }
        consume(layout)
        return result
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
            return try parseLayout()
        } catch {
            throw fail(error)
        }
    }

    private mutating func parseLayout() throws(MotanCodecError) -> Layout? {
        let start = readIndex
        let available = buffer.count - start
        let offset = bufferStreamOffset + start
        guard available >= 2 else { return nil }
        let magic = UInt16(buffer[start]) << 8 | UInt16(buffer[start + 1])
        guard magic == FrameHeader.magic else { throw .badMagic(found: magic, offset: offset) }
        guard available >= 4 else { return nil }
        let version = buffer[start + 3] >> 3
        guard version == FrameHeader.motan2Version else {
            if version == 0 { throw .motanV1NotSupported(offset: offset + 3) }
            throw .unsupportedVersion(version, offset: offset + 3)
        }
        guard available >= 17 else { return nil }
        let metaSize = readUInt32(at: start + 13)
        guard UInt64(metaSize) <= UInt64(maxContentLength) else {
            throw .metaTooLarge(size: metaSize, limit: maxContentLength, offset: offset + 13)
        }
        let metaLength = Int(metaSize)
        guard available >= 17 + metaLength else { return nil }
        let shape: MetaBytes.Shape
        if let checkedMeta {
            shape = checkedMeta
        } else {
            shape = buffer.withUnsafeBytes {
                MetaBytes.shape(
                    of: UnsafeRawBufferPointer(rebasing: $0[(start + 17)..<(start + 17 + metaLength)]))
            }
            guard shape.fieldCount % 2 == 0 else {
                throw .unpairedMeta(fieldCount: shape.fieldCount, offset: offset + 17)
            }
            checkedMeta = shape
        }
        guard available >= 21 + metaLength else { return nil }
        let bodySize = readUInt32(at: start + 17 + metaLength)
        guard UInt64(bodySize) <= UInt64(maxContentLength) else {
            throw .bodyTooLarge(size: bodySize, limit: maxContentLength, offset: offset + 17 + metaLength)
        }
        let bodyLength = Int(bodySize)
        guard available >= 21 + metaLength + bodyLength else { return nil }

        let typeByte = buffer[start + 2]
        let versionStatus = buffer[start + 3]
        var requestID: UInt64 = 0
        for i in 0..<8 { requestID = requestID << 8 | UInt64(buffer[start + 5 + i]) }
        let header = FrameHeader(
            flags: MessageFlags(rawValue: typeByte),
            version: versionStatus >> 3,
            status: versionStatus & 0x07,
            serialization: buffer[start + 4] >> 3,
            requestID: requestID)
        return Layout(
            header: header, start: start, meta: shape,
            bodyStart: start + 21 + metaLength, bodyLength: bodyLength)
    }

    private func view(of layout: Layout, in bytes: UnsafeRawBufferPointer) -> FrameView {
        let metaStart = layout.start + 17
        return FrameView(
            header: layout.header,
            metaBytes: UnsafeRawBufferPointer(
                rebasing: bytes[metaStart..<(metaStart + layout.meta.length)]),
            body: UnsafeRawBufferPointer(rebasing: bytes[layout.bodyStart..<layout.end]),
            streamOffset: bufferStreamOffset + layout.start,
            metaHasEmptyField: layout.meta.hasEmptyField)
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
