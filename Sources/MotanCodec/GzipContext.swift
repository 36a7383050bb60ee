import CZlib

/// Reusable zlib streams: each is set up once and reset (`deflateReset` / `inflateReset`) for
/// every later operation, so a steady stream of bodies costs zlib no allocation at all, where
/// the static `Gzip` API pays for five (deflate) or two (inflate) every time.
///
/// A context is not thread-safe: keep one per event loop (or per connection) and use it only
/// there. Its streams are created on first use, so a context that only inflates never holds the
/// ~256 KiB of deflate state. A failed operation leaves the context ready for the next one.
public final class GzipContext {
    /// The compression level every `compress` call uses (1 is what motan-go uses).
    public let level: Int32
    /// Inflate output of `withDecompressed` is kept between calls up to this capacity.
    public static let retainedScratchCapacity = 256 * 1024

    private var deflater: UnsafeMutablePointer<z_stream>?
    private var inflater: UnsafeMutablePointer<z_stream>?
    private var scratch: [UInt8] = []

    public init(level: Int32 = 1) {
        self.level = level
    }

    deinit {
        if let deflater {
            deflateEnd(deflater)
            deflater.deinitialize(count: 1)
            deflater.deallocate()
        }
        if let inflater {
            inflateEnd(inflater)
            inflater.deinitialize(count: 1)
            inflater.deallocate()
        }
    }

    /// Appends one gzip member holding `input` to `output`; on failure `output` is left as it was.
    public func compress(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(MotanCodecError) {
        let stream = try readyDeflater()
        let code = Gzip.deflateMember(stream, input, into: &output)
        guard code == Z_OK else { throw .gzipCompressionFailed(zlibCode: code) }
    }

    public func compress(_ input: [UInt8]) throws(MotanCodecError) -> [UInt8] {
        var output: [UInt8] = []
        try input.withBytes { (bytes) throws(MotanCodecError) in try compress(bytes, into: &output) }
        return output
    }

    /// Inflates `input` (every concatenated member) and appends at most `maxOutput` bytes to
    /// `output`; on failure `output` is left as it was. A reused `output` with enough capacity
    /// makes this allocation-free.
    public func decompress(
        _ input: UnsafeRawBufferPointer, maxOutput: Int, into output: inout [UInt8]
    ) throws(MotanCodecError) {
        let stream = try readyInflater()
        if let failure = Gzip.inflateAll(stream, input, maxOutput: maxOutput, into: &output) { throw failure }
    }

    public func decompress(_ input: UnsafeRawBufferPointer, maxOutput: Int) throws(MotanCodecError) -> [UInt8] {
        var output: [UInt8] = []
        try decompress(input, maxOutput: maxOutput, into: &output)
        return output
    }

    public func decompress(_ input: [UInt8], maxOutput: Int) throws(MotanCodecError) -> [UInt8] {
        try input.withBytes { (bytes) throws(MotanCodecError) in try decompress(bytes, maxOutput: maxOutput) }
    }

    /// Inflates `input` into the context's own buffer and lends it to `body`; the bytes are
    /// valid only inside `body`. The buffer is kept for the next call unless it grew beyond
    /// `retainedScratchCapacity`, so steady traffic of moderate bodies allocates nothing.
    public func withDecompressed<R>(
        _ input: UnsafeRawBufferPointer, maxOutput: Int,
        _ body: (UnsafeRawBufferPointer) throws(MotanCodecError) -> R
    ) throws(MotanCodecError) -> R {
        // Taken out, so that `body` may use this context again without overlapping access.
        var buffer: [UInt8] = []
        swap(&buffer, &scratch)
        defer {
            if buffer.capacity <= Self.retainedScratchCapacity {
                buffer.removeAll(keepingCapacity: true)
                if buffer.capacity > scratch.capacity { swap(&buffer, &scratch) }
            }
        }
        try decompress(input, maxOutput: maxOutput, into: &buffer)
        return try buffer.withBytes(body)
    }

    private func readyDeflater() throws(MotanCodecError) -> UnsafeMutablePointer<z_stream> {
        if let deflater {
            let code = deflateReset(deflater)
            guard code == Z_OK else { throw .gzipCompressionFailed(zlibCode: code) }
            return deflater
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let code = cmotan_deflate_init_gzip(stream, level)
        guard code == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw .gzipCompressionFailed(zlibCode: code)
        }
        deflater = stream
        return stream
    }

    private func readyInflater() throws(MotanCodecError) -> UnsafeMutablePointer<z_stream> {
        if let inflater {
            let code = inflateReset(inflater)
            guard code == Z_OK else { throw .gzipCorrupt(zlibCode: code, offset: 0) }
            return inflater
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let code = cmotan_inflate_init_gzip(stream)
        guard code == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw .gzipCorrupt(zlibCode: code, offset: 0)
        }
        inflater = stream
        return stream
    }
}
