import CZlib

/// Gzip (RFC 1952) for frame bodies, through the system zlib.
public enum Gzip {
    /// Appends one gzip member holding `input` to `output`. Level 1 is what motan-go uses.
    /// On failure `output` is left as it was.
    public static func compress(
        _ input: UnsafeRawBufferPointer, level: Int32 = 1, into output: inout [UInt8]
    ) throws(MotanCodecError) {
        precondition(input.count <= Int(UInt32.max), "gzip input larger than 4 GiB")
        // z_stream must not move between calls (zlib checks its own back pointer), and a stack
        // slot avoids one more heap allocation.
        let code = withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) { slot -> Int32 in
            let stream = slot.baseAddress!
            stream.initialize(to: z_stream())
            defer { stream.deinitialize(count: 1) }
            var code = cmotan_deflate_init_gzip(stream, level)
            guard code == Z_OK else { return code }
            defer { deflateEnd(stream) }
            let bound = Int(deflateBound(stream, uLong(input.count)))
            let start = output.count
            output.append(contentsOf: repeatElement(0, count: bound))
            output.withUnsafeMutableBytes { out in
                stream.pointee.next_in = UnsafeMutablePointer(
                    mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(input.count)
                stream.pointee.next_out = (out.baseAddress! + start).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(bound)
                // deflateBound guarantees room for the whole member in one call.
                code = deflate(stream, Z_FINISH)
            }
            guard code == Z_STREAM_END else {
                output.removeLast(bound)
                return code
            }
            output.removeLast(Int(stream.pointee.avail_out))
            return Z_OK
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
        precondition(maxOutput >= 0, "maxOutput must not be negative")
        precondition(input.count <= Int(UInt32.max), "gzip input larger than 4 GiB")
        // One byte beyond the limit tells "exactly at the limit" from "over it".
        let ceiling = maxOutput + 1
        var output: [UInt8] = []
        var produced = 0
        let outcome: MotanCodecError? = withUnsafeTemporaryAllocation(of: z_stream.self, capacity: 1) {
            slot -> MotanCodecError? in
            let stream = slot.baseAddress!
            stream.initialize(to: z_stream())
            defer { stream.deinitialize(count: 1) }
            let initCode = cmotan_inflate_init_gzip(stream)
            guard initCode == Z_OK else { return .gzipCorrupt(zlibCode: initCode, offset: 0) }
            defer { inflateEnd(stream) }
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(input.count)
            var consumed: Int { input.count - Int(stream.pointee.avail_in) }

            while true {
                if produced == output.count {
                    if output.count >= ceiling { return .gzipOutputTooLarge(limit: maxOutput) }
                    let target = Swift.min(ceiling, Swift.max(output.count * 2, input.count * 4, 1024))
                    output.append(contentsOf: repeatElement(0, count: target - output.count))
                }
                var code: Int32 = Z_OK
                output.withUnsafeMutableBytes { out in
                    let room = out.count - produced
                    stream.pointee.next_out = (out.baseAddress! + produced).assumingMemoryBound(
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
                    if produced < output.count { return .gzipCorrupt(zlibCode: code, offset: consumed) }
                default:
                    return .gzipCorrupt(zlibCode: code, offset: consumed)
                }
            }
        }
        if let outcome { throw outcome }
        if produced > maxOutput { throw .gzipOutputTooLarge(limit: maxOutput) }
        output.removeLast(output.count - produced)
        return output
    }

    public static func decompress(_ input: [UInt8], maxOutput: Int) throws(MotanCodecError) -> [UInt8] {
        try input.withBytes { (bytes) throws(MotanCodecError) in
            try decompress(bytes, maxOutput: maxOutput)
        }
    }
}
