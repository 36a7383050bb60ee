import MotanCodec

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One Motan2 request encoded once; each send patches the request id into the header in place, so
/// issuing a request costs one copy into the connection's pooled write chunk and nothing else.
final class BenchRequestTemplate {
    /// Byte offset of the 8-byte big-endian request id in every Motan2 header.
    static let requestIDOffset = 5

    let bytes: UnsafeMutableRawBufferPointer

    init(_ encoded: [UInt8]) {
        bytes = .allocate(byteCount: encoded.count, alignment: 8)
        encoded.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }

    @inline(__always)
    func patch(requestID: UInt64) -> UnsafeRawBufferPointer {
        (bytes.baseAddress! + Self.requestIDOffset).storeBytes(of: requestID.bigEndian, as: UInt64.self)
        return UnsafeRawBufferPointer(bytes)
    }

    /// A simple-serialized request carrying one string of `payloadBytes` ('a'…'z' repeating), the
    /// same request the C yardstick sends, plus `M_pp` and `M_s` as typical clients do.
    static func request(
        service: String, method: String, group: String, payloadBytes: Int, gzip: Bool
    ) -> BenchRequestTemplate {
        var body: [UInt8] = []
        body.reserveCapacity(payloadBytes + 5)
        let argument = String(
            decoding: (0..<payloadBytes).map { UInt8(ascii: "a") + UInt8($0 % 26) }, as: UTF8.self)
        SimpleSerialization.appendString(argument, into: &body)
        var gzipped = false
        if gzip, let compressed = try? Gzip.compress(body) {
            body = compressed
            gzipped = true
        }
        var extra = Meta()
        extra.append("M_pp", "motan2")
        extra.append(MetaKey.source, "motan-bench")
        var output: [UInt8] = []
        body.withUnsafeBytes {
            FrameEncoder.encodeRequest(
                requestID: 0, service: service, method: method, group: group, extraMeta: extra, body: $0,
                bodyIsGzipped: gzipped, into: &output)
        }
        return BenchRequestTemplate(output)
    }

    static func heartbeat() -> BenchRequestTemplate {
        var output: [UInt8] = []
        FrameEncoder.encodeHeartbeatRequest(requestID: 0, into: &output)
        return BenchRequestTemplate(output)
    }
}

/// The monotonic clock every loop and the runner share, in nanoseconds.
@inline(__always)
func benchNow() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}
