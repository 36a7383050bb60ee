import CZlib

/// Gzip (RFC 1952) for frame bodies, through the system zlib. Each call sets up and tears down
/// its own zlib stream (five allocations for deflate); code that compresses or inflates often
/// keeps a `GzipContext` instead.
public enum Gzip {
    /// Appends one gzip member holding `input` to `output`. Level 1 is what motan-go uses.
    /// On failure `output` is left as it was.
    public static func compress(
        _ input: UnsafeRawBufferPointer, level: Int32 = 1, into output: inout [UInt8]
    ) throws(MotanCodecError) {
        // z_stream must not move between calls (zlib checks its own back pointer), and a stack
        // slot avoids one more heap allocation.
        let code = withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) { slot -> Int32 in
            let stream = slot.baseAddress!
            stream.initialize(to: z_stream())
            defer { stream.deinitialize(count: 1) }
            let code = cmotan_deflate_init_gzip(stream, level)
            guard code == Z_OK else { return code }
            defer { deflateEnd(stream) }
            return deflateMember(stream, input, into: &output)
        }
        guard code == Z_OK else { throw .gzipCompressionFailed(zlibCode: code) }
    }

    public static func compress(_ input: [UInt8], level: Int32 = 1) throws(MotanCodecError) -> [UInt8] {
        var output: [UInt8] = []
        try input.withBytes { (bytes) throws(MotanCodecError) in
            try compress(bytes, level: level, into: &output)
        }
        return output
    }

    /// Inflates gzip data (concatenated members too, as Go's and Java's readers do), failing as
    /// soon as the output would exceed `maxOutput` bytes so that a tiny bomb costs at most
    /// `maxOutput` bytes of memory.
    public static func decompress(
        _ input: UnsafeRawBufferPointer, maxOutput: Int
    ) throws(MotanCodecError) -> [UInt8] {
        var output: [UInt8] = []
        let failure = withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) {
            slot -> MotanCodecError? in
            let stream = slot.baseAddress!
            stream.initialize(to: z_stream())
            defer { stream.deinitialize(count: 1) }
            let initCode = cmotan_inflate_init_gzip(stream)
            guard initCode == Z_OK else { return .gzipCorrupt(zlibCode: initCode, offset: 0) }
            defer { inflateEnd(stream) }
            return inflateAll(stream, input, maxOutput: maxOutput, into: &output)
        }
        if let failure { throw failure }
        return output
    }

    public static func decompress(_ input: [UInt8], maxOutput: Int) throws(MotanCodecError) -> [UInt8] {
        try input.withBytes { (bytes) throws(MotanCodecError) in
            try decompress(bytes, maxOutput: maxOutput)
        }
    }

    // MARK: One operation on a ready stream (fresh or reset), shared with GzipContext.

    /// Deflates `input` as one whole member appended to `output`; returns Z_OK or the zlib error,
    /// leaving `output` as it was on error.
    static func deflateMember(
        _ stream: UnsafeMutablePointer<z_stream>, _ input: UnsafeRawBufferPointer, into output: inout [UInt8]
    ) -> Int32 {
        precondition(input.count <= Int(UInt32.max), "gzip input larger than 4 GiB")
        let bound = Int(deflateBound(stream, uLong(input.count)))
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bound))
        var code: Int32 = Z_OK
        output.withUnsafeMutableBytes { out in
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(input.count)
            stream.pointee.next_out = (out.baseAddress! + start).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(bound)
            // deflateBound guarantees room for the whole member in one call.
            code = deflate(stream, Z_FINISH)
        }
        // The stream keeps pointers into buffers that are about to go away.
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        guard code == Z_STREAM_END else {
            output.removeLast(bound)
            return code == Z_OK ? Z_BUF_ERROR : code
        }
        output.removeLast(Int(stream.pointee.avail_out))
        return Z_OK
    }

    /// Inflates every member of `input`, appending at most `maxOutput` bytes to `output`; on
    /// error `output` keeps only what it had before.
    static func inflateAll(
        _ stream: UnsafeMutablePointer<z_stream>, _ input: UnsafeRawBufferPointer, maxOutput: Int,
        into output: inout [UInt8]
    ) -> MotanCodecError? {
        precondition(maxOutput >= 0, "maxOutput must not be negative")
        precondition(input.count <= Int(UInt32.max), "gzip input larger than 4 GiB")
        let start = output.count
        // One byte beyond the limit tells "exactly at the limit" from "over it".
        let ceiling = maxOutput == .max ? maxOutput : maxOutput + 1
        var produced = 0
        stream.pointee.next_in = UnsafeMutablePointer(
            mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        var consumed: Int { input.count - Int(stream.pointee.avail_in) }
        defer {
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }

        let failure: MotanCodecError? = {
            while true {
                let grown = output.count - start
                if produced == grown {
                    if grown >= ceiling { return .gzipOutputTooLarge(limit: maxOutput) }
                    let target = Swift.min(ceiling, Swift.max(grown * 2, input.count * 4, 1024))
                    output.append(contentsOf: repeatElement(0, count: target - grown))
                }
                var code: Int32 = Z_OK
                output.withUnsafeMutableBytes { out in
                    let room = out.count - start - produced
                    stream.pointee.next_out = (out.baseAddress! + start + produced).assumingMemoryBound(
                        to: Bytef.self)
                    stream.pointee.avail_out = uInt(room)
                    code = inflate(stream, Z_NO_FLUSH)
                    produced += room - Int(stream.pointee.avail_out)
                }
                switch code {
                case Z_STREAM_END:
                    guard stream.pointee.avail_in > 0 else { return nil }
                    // Another member follows; garbage there fails in the next inflate call.
                    inflateReset(stream)
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    if stream.pointee.avail_in == 0 { return .gzipTruncated(offset: consumed) }
                    if start + produced < output.count {
                        return .gzipCorrupt(zlibCode: code, offset: consumed)
                    }
                default:
                    return .gzipCorrupt(zlibCode: code, offset: consumed)
                }
            }
        }()
        if failure == nil && produced > maxOutput {
            output.removeLast(output.count - start)
            return .gzipOutputTooLarge(limit: maxOutput)
        }
        output.removeLast(output.count - start - (failure == nil ? produced : 0))
        return failure
    }
}
