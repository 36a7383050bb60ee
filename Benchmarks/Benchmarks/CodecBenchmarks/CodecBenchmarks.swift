import Benchmark
import MotanCodec

// Every benchmark runs 1,000 operations per iteration (scaling factor kilo) so that timer and
// harness overhead does not swamp a sub-microsecond operation; the figures marked `*` in the
// report are per operation.

private let service = "com.weibo.motan.demo.service.MotanDemoService"
private let method = "hello"
private let group = "motan-demo-rpc"
private let extraMeta: Meta = ["M_pp": "motan2", "M_s": "peer-client"]
/// 64 bytes of simple-serialized string: tag, u32 length, 59 characters.
private let argument = String(repeating: "x", count: 59)

/// A typical request: five meta pairs (M_p, M_m, M_g, M_pp, M_s) and a 64-byte body.
private func typicalRequestBytes() -> [UInt8] {
    var bytes: [UInt8] = []
    FrameEncoder.encodeRequest(
        requestID: 0x18eb_0577_2d00_0001, service: service, method: method, group: group,
        extraMeta: extraMeta, into: &bytes
    ) { SimpleSerialization.appendString(argument, into: &$0) }
    return bytes
}

/// 16 KiB of text-like data (words from a small vocabulary), simple-serialized.
private func largeBody() -> [UInt8] {
    let words = ["motan", "rpc", "weibo", "service", "gzip", "frame", "request", "response", "meta", "body"]
    var text = ""
    var state: UInt32 = 12345
    while text.utf8.count < 16 * 1024 - 5 - 10 {
        state = state &* 1_103_515_245 &+ 12345
        text += words[Int(state >> 16) % words.count] + " "
    }
    var body: [UInt8] = []
    SimpleSerialization.appendString(String(text.prefix(16 * 1024 - 5)), into: &body)
    return body
}

private func gzipResponseBytes(_ body: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = []
    FrameEncoder.encodeResponse(requestID: 7, processTime: 1, body: body, mingzSize: 1024, into: &bytes)
    return bytes
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    Benchmark("encode typical request into reused buffer") { benchmark in
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            FrameEncoder.encodeRequest(
                requestID: 0x18eb_0577_2d00_0001, service: service, method: method, group: group,
                extraMeta: extraMeta, into: &buffer
            ) { SimpleSerialization.appendString(argument, into: &$0) }
            blackHole(buffer.count)
        }
    }

    Benchmark("encode typical request Frame value into reused buffer") { benchmark in
        let frame = Frame.request(
            requestID: 0x18eb_0577_2d00_0001, service: service, method: method, group: group,
            arguments: [.string(argument)], extraMeta: extraMeta)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            FrameEncoder.encode(frame, into: &buffer)
            blackHole(buffer.count)
        }
    }

    Benchmark("decode typical request (owned Frame via next())") { benchmark in
        let bytes = typicalRequestBytes()
        var decoder = FrameDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            bytes.withUnsafeBytes { decoder.feed($0) }
            let frame = try decoder.next()
            blackHole(frame)
        }
    }

    Benchmark("decode typical request (borrowed FrameView via withNext)") { benchmark in
        let bytes = typicalRequestBytes()
        var decoder = FrameDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            bytes.withUnsafeBytes { decoder.feed($0) }
            let seen = try decoder.withNext { view in
                (
                    view.requestID, view.metaValue(forKey: "M_p")?.count, view.metaValue(forKey: "M_m")?.count,
                    view.body.count
                )
            }
            blackHole(seen)
        }
    }

    Benchmark("decode typical request and its argument values") { benchmark in
        let bytes = typicalRequestBytes()
        var decoder = FrameDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            bytes.withUnsafeBytes { decoder.feed($0) }
            let values = try decoder.withNext { view in
                Result { () throws(MotanCodecError) in try SimpleSerialization.decode(view.body) }
            }
            blackHole(try values?.get())
        }
    }

    Benchmark(
        "encode 16 KiB gzip response into reused buffer",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) {
        benchmark in
        let body = largeBody()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            FrameEncoder.encodeResponse(requestID: 7, processTime: 1, body: body, mingzSize: 1024, into: &buffer)
            blackHole(buffer.count)
        }
    }

    Benchmark(
        "decode 16 KiB gzip response and gunzip body",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) {
        benchmark in
        let bytes = gzipResponseBytes(largeBody())
        var decoder = FrameDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            bytes.withUnsafeBytes { decoder.feed($0) }
            let body = try decoder.next()?.decodedBody()
            blackHole(body)
        }
    }

    // zlib's own allocations (five per deflate, two per inflate) disappear with a reused context.

    Benchmark(
        "gzip 16 KiB body, static Gzip API",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let body = largeBody()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            try body.withUnsafeBytes { try Gzip.compress($0, into: &buffer) }
            blackHole(buffer.count)
        }
    }

    Benchmark(
        "gzip 16 KiB body, reused GzipContext",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let body = largeBody()
        let context = GzipContext()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        try body.withUnsafeBytes { try context.compress($0, into: &buffer) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            try body.withUnsafeBytes { try context.compress($0, into: &buffer) }
            blackHole(buffer.count)
        }
    }

    Benchmark(
        "gunzip 16 KiB body, static Gzip API",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let compressed = try Gzip.compress(largeBody())
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let body = try compressed.withUnsafeBytes { try Gzip.decompress($0, maxOutput: 1 << 20) }
            blackHole(body.count)
        }
    }

    Benchmark(
        "gunzip 16 KiB body, reused GzipContext into reused buffer",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let compressed = try Gzip.compress(largeBody())
        let context = GzipContext()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 * 1024)
        try compressed.withUnsafeBytes { try context.decompress($0, maxOutput: 1 << 20, into: &buffer) }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            try compressed.withUnsafeBytes { try context.decompress($0, maxOutput: 1 << 20, into: &buffer) }
            blackHole(buffer.count)
        }
    }

    Benchmark(
        "encode 16 KiB gzip response with reused GzipContext into reused buffer",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let body = largeBody()
        let context = GzipContext()
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.removeAll(keepingCapacity: true)
            FrameEncoder.encodeResponse(
                requestID: 7, processTime: 1, body: body, mingzSize: 1024, gzip: context, into: &buffer)
            blackHole(buffer.count)
        }
    }

    Benchmark(
        "decode 16 KiB gzip response values with reused GzipContext",
        configuration: .init(scalingFactor: .kilo, maxDuration: .seconds(3))
    ) { benchmark in
        let bytes = gzipResponseBytes(largeBody())
        let context = GzipContext()
        var decoder = FrameDecoder()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            bytes.withUnsafeBytes { decoder.feed($0) }
            let values = try decoder.withNext { view in
                Result { () throws(MotanCodecError) in
                    try view.decodedValues(maxContentLength: FrameDecoder.defaultMaxContentLength, gzip: context)
                }
            }
            blackHole(try values?.get())
        }
    }
}
