// libFuzzer entry point for the parts of MotanCodec that read peer input: the frame decoder
// (fed in random splits, through both the owning and the borrowing API), the simple
// deserializer, gunzip and the lenient M_e parser. Besides crashes and leaks it checks that
// everything decoded re-encodes to something that decodes to the same value.
//
// The first input byte picks the target; the rest is the payload. Built by scripts/fuzz.sh.
import MotanCodec

private let limit = 1 << 20
/// One context for every input, as a loop keeps one for all its connections: whatever an input
/// does to it, the next one must still get the same answers as the one-shot API.
nonisolated(unsafe) private let sharedGzip = GzipContext()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let selector = input.first else { return 0 }
    let payload = UnsafeRawBufferPointer(rebasing: input[1...])
    switch selector % 5 {
    case 0: fuzzFrames(payload, chunk: Int(selector / 5) % 64 + 1)
    case 1: fuzzSimple(payload)
    case 2: fuzzGunzip(payload)
    case 3: fuzzFrames(payload, chunk: Swift.max(payload.count, 1))
    default: fuzzErrorJSON(payload)
    }
    return 0
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

private func decodeAll(
    _ bytes: UnsafeRawBufferPointer, chunk: Int
) -> (frames: [Frame], error: MotanCodecError?) {
    var decoder = FrameDecoder(maxContentLength: limit)
    var frames: [Frame] = []
    var position = 0
    repeat {
        let end = Swift.min(position + chunk, bytes.count)
        decoder.feed(UnsafeRawBufferPointer(rebasing: bytes[position..<end]))
        position = end
        do {
            while let frame = try decoder.next() { frames.append(frame) }
        } catch {
            return (frames, error)
        }
    } while position < bytes.count
    do {
        try decoder.finish()
    } catch {
        return (frames, error)
    }
    return (frames, nil)
}

private func decodeAllBorrowed(_ bytes: UnsafeRawBufferPointer) -> (frames: [Frame], error: MotanCodecError?) {
    var decoder = FrameDecoder(maxContentLength: limit)
    decoder.feed(bytes)
    var frames: [Frame] = []
    do {
        while let frame = try decoder.withNext({ view -> Frame in
            let frame = view.makeFrame()
            view.forEachMetaPair { rawKey, rawValue in
                // Lookups go by String, so only keys that are valid UTF-8 can be found again.
                let key = String(decoding: rawKey, as: UTF8.self)
                guard key.utf8.elementsEqual(rawKey) else { return }
                check(view.metaValue(forKey: key) != nil, "view lost meta key \(key)")
                check(frame.meta[key] != nil, "owned meta lost key \(key)")
                _ = rawValue
            }
            check(view.body.elementsEqual(frame.body), "view body differs from owned body")
            return frame
        }) {
            frames.append(frame)
        }
        try decoder.finish()
    } catch {
        return (frames, error)
    }
    return (frames, nil)
}

private func fuzzFrames(_ bytes: UnsafeRawBufferPointer, chunk: Int) {
    let split = decodeAll(bytes, chunk: chunk)
    let whole = decodeAllBorrowed(bytes)
    check(split.frames == whole.frames, "split and whole decoding disagree")
    check(split.error == whole.error, "split and whole decoding fail differently")
    if let error = split.error { _ = error.description }

    for frame in split.frames {
        let sendable = frame.meta.allSatisfy { !$0.key.isEmpty && !$0.value.isEmpty }
        var encoded: [UInt8] = []
        FrameEncoder.encode(frame, into: &encoded)
        let again = encoded.withUnsafeBytes { decodeAll($0, chunk: $0.count) }
        check(again.error == nil, "re-encoded frame does not decode: \(String(describing: again.error))")
        check(again.frames.count == 1, "re-encoded frame decodes to \(again.frames.count) frames")
        if sendable { check(again.frames.first == frame, "frame changed after a round trip") }

        _ = frame.errorInfo
        if let body = try? frame.decodedBody(maxContentLength: limit) {
            check(body.count <= limit, "gunzip exceeded its limit")
            if let values = try? SimpleSerialization.decode(body) { checkValuesRoundTrip(values) }
        }
        let values = Result { () throws(MotanCodecError) in try frame.decodedValues(maxContentLength: limit) }
        let reused = Result { () throws(MotanCodecError) in
            try frame.decodedValues(maxContentLength: limit, gzip: sharedGzip)
        }
        check(values == reused, "decoding through a reused gzip context changed the result")
    }
}

private func checkValuesRoundTrip(_ values: [SimpleValue]) {
    let encoded = SimpleSerialization.encode(values)
    guard let decoded = try? SimpleSerialization.decode(encoded) else {
        fatalError("re-encoded simple values do not decode")
    }
    check(decoded == values, "simple values changed after a round trip")
    check(SimpleSerialization.encode(decoded) == encoded, "simple encoding is not stable")
}

private func fuzzSimple(_ bytes: UnsafeRawBufferPointer) {
    let full: [SimpleValue]?
    do {
        full = try SimpleSerialization.decode(bytes, budget: .unlimited)
        checkValuesRoundTrip(full!)
    } catch {
        _ = error.description
        full = nil
    }
    // A small budget either changes nothing or stops the decoder with a budget error.
    do {
        let values = try SimpleSerialization.decode(bytes, budget: DecodeBudget(maxElements: 64, maxBytes: 4096))
        check(full == values, "a budget changed the decoded values")
    } catch .simpleElementLimitExceeded, .simpleDecodedSizeLimitExceeded {
        return
    } catch {
        check(full == nil, "a budget turned a decodable body into \(error)")
    }
}

private func gunzip(_ bytes: UnsafeRawBufferPointer, with context: GzipContext?) -> Result<[UInt8], MotanCodecError> {
    Result { () throws(MotanCodecError) in
        if let context { return try context.decompress(bytes, maxOutput: limit) }
        return try Gzip.decompress(bytes, maxOutput: limit)
    }
}

private func fuzzGunzip(_ bytes: UnsafeRawBufferPointer) {
    let oneShot = gunzip(bytes, with: nil)
    check(gunzip(bytes, with: sharedGzip) == oneShot, "a reused gzip context disagrees with the one-shot API")
    guard let inflated = try? oneShot.get() else { return }
    check(inflated.count <= limit, "gunzip exceeded its limit")
    let again = inflated.withUnsafeBytes { raw -> [UInt8]? in
        var compressed: [UInt8] = []
        guard (try? Gzip.compress(raw, into: &compressed)) != nil else { return nil }
        return try? Gzip.decompress(compressed, maxOutput: limit)
    }
    check(again == inflated, "gzip round trip changed the data")
    let viaContext = inflated.withUnsafeBytes { raw -> [UInt8]? in
        var compressed: [UInt8] = []
        guard (try? sharedGzip.compress(raw, into: &compressed)) != nil else { return nil }
        return try? sharedGzip.decompress(compressed, maxOutput: limit)
    }
    check(viaContext == inflated, "gzip round trip through a reused context changed the data")
}

private func fuzzErrorJSON(_ bytes: UnsafeRawBufferPointer) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let info = MotanErrorInfo(json: text) else {
        check(MotanErrorInfo(lenientJSON: text).errmsg == text, "lenient parse lost the raw text")
        return
    }
    check(MotanErrorInfo(json: info.json) == info, "M_e JSON round trip changed the error")
}
