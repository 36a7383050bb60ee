import Testing

@testable import MotanCodec

/// Every framing rejection, with the exact reason and stream offset.
struct DecoderErrorTests {
    static let heartbeat = hex("f1f1 12 08 30 0000000000000002 00000000 00000000")

    private func firstError(_ bytes: [UInt8], maxContentLength: Int = FrameDecoder.defaultMaxContentLength)
        -> MotanCodecError?
    {
        var decoder = FrameDecoder(maxContentLength: maxContentLength)
        decoder.feed(bytes)
        do {
            while try decoder.next() != nil {}
            try decoder.finish()
            return nil
        } catch {
            return error
        }
    }

    @Test func badMagicIsRejectedAfterTwoBytes() {
        var decoder = FrameDecoder()
        decoder.feed([0xF1])
        #expect(throws: Never.self) { try decoder.next() }
        decoder.feed([0xF2])
        #expect(throws: MotanCodecError.badMagic(found: 0xF1F2, offset: 0)) { try decoder.next() }
    }

    @Test func offsetsCountFromTheStartOfTheStream() {
        let garbage = Self.heartbeat + Self.heartbeat + hex("4745 5420")  // "GET " after two frames
        #expect(firstError(garbage) == .badMagic(found: 0x4745, offset: 42))
        let result = decodeStream(garbage, chunks: [1])
        #expect(result.frames.count == 2)
        #expect(result.error == .badMagic(found: 0x4745, offset: 42))
    }

    @Test func versionZeroIsMotanV1() {
        #expect(firstError(hex("f1f1 00 00 30")) == .motanV1NotSupported(offset: 3))
        #expect(firstError(Self.heartbeat + hex("f1f1 00 01")) == .motanV1NotSupported(offset: 24))
    }

    @Test func otherVersionsAreRejected() {
        #expect(firstError(hex("f1f1 00 10 30")) == .unsupportedVersion(2, offset: 3))
        #expect(firstError(hex("f1f1 00 f9 30")) == .unsupportedVersion(31, offset: 3))
    }

    @Test func metaSizeAboveTheLimitIsRejectedBeforeTheMetaArrives() {
        var decoder = FrameDecoder(maxContentLength: 100)
        decoder.feed(hex("f1f1 00 08 30 0000000000000001 00000065"))
        #expect(throws: MotanCodecError.metaTooLarge(size: 101, limit: 100, offset: 13)) { try decoder.next() }
        #expect(
            firstError(hex("f1f1 00 08 30 0000000000000001 ffffffff"))
                == .metaTooLarge(size: 0xFFFF_FFFF, limit: 10 * 1024 * 1024, offset: 13))
    }

    @Test func metaAtTheLimitIsAccepted() throws {
        let meta = Array("k\n".utf8) + [UInt8](repeating: 0x76, count: 98)
        let frame = try decodeOne(
            hex("f1f1 00 08 30 0000000000000001") + be32(100) + meta + be32(0), maxContentLength: 100)
        #expect(frame.meta["k"]?.utf8.count == 98)
    }

    @Test func bodySizeAboveTheLimitIsRejectedBeforeTheBodyArrives() {
        let meta = Array("k\nv".utf8)
        var decoder = FrameDecoder(maxContentLength: 100)
        decoder.feed(Self.heartbeat)
        decoder.feed(hex("f1f1 00 08 30 0000000000000001") + be32(3) + meta + be32(101))
        #expect(throws: Never.self) { try decoder.next() }
        #expect(throws: MotanCodecError.bodyTooLarge(size: 101, limit: 100, offset: 21 + 17 + 3)) {
            try decoder.next()
        }
        #expect(
            firstError(hex("f1f1 00 08 30 0000000000000001 00000000 80000000"))
                == .bodyTooLarge(size: 0x8000_0000, limit: 10 * 1024 * 1024, offset: 17))
    }

    @Test func unpairedMetaIsRejected() {
        func frame(meta: String) -> [UInt8] {
            let bytes = Array(meta.utf8)
            return hex("f1f1 00 08 30 0000000000000001") + be32(bytes.count) + bytes + be32(0)
        }
        #expect(firstError(frame(meta: "k")) == .unpairedMeta(fieldCount: 1, offset: 17))
        #expect(firstError(frame(meta: "k\nv\nx")) == .unpairedMeta(fieldCount: 3, offset: 17))
        // Only one trailing LF is forgiven.
        #expect(firstError(frame(meta: "k\nv\n\n")) == .unpairedMeta(fieldCount: 3, offset: 17))
        #expect(firstError(frame(meta: "k\n")) == .unpairedMeta(fieldCount: 1, offset: 17))
        #expect(firstError(Self.heartbeat + frame(meta: "a\nb\nc")) == .unpairedMeta(fieldCount: 3, offset: 38))
        // Accepted shapes.
        #expect(firstError(frame(meta: "k\nv\n")) == nil)
        #expect(firstError(frame(meta: "\n")) == nil)
    }

    @Test func unpairedMetaIsRejectedBeforeTheBodyArrives() {
        var decoder = FrameDecoder()
        decoder.feed(hex("f1f1 00 08 30 0000000000000001 00000001 6b"))
        #expect(throws: MotanCodecError.unpairedMeta(fieldCount: 1, offset: 17)) { try decoder.next() }
    }

    @Test func streamEndingInsideTheMetaIsTruncatedMeta() {
        var decoder = FrameDecoder()
        decoder.feed(Self.heartbeat)
        decoder.feed(hex("f1f1 00 08 30 0000000000000001 0000000a 6b0a76"))
        #expect((try? decoder.next())?.requestID == 2)
        #expect((try? decoder.next()) == .some(nil))
        #expect(throws: MotanCodecError.truncatedMeta(declared: 10, received: 3, offset: 21 + 17)) {
            try decoder.finish()
        }
    }

    @Test func streamEndingElsewhereIsTruncatedFrame() {
        #expect(firstError(hex("f1f1 00 08")) == .truncatedFrame(needed: 17, received: 4, offset: 0))
        #expect(
            firstError(hex("f1f1 00 08 30 0000000000000001 00000003 6b0a76 0000"))
                == .truncatedFrame(needed: 24, received: 22, offset: 0))
        #expect(
            firstError(hex("f1f1 00 08 30 0000000000000001 00000000 00000005 0102"))
                == .truncatedFrame(needed: 26, received: 23, offset: 0))
        #expect(firstError(Self.heartbeat) == nil)
        #expect(firstError([]) == nil)
    }

    @Test func theFirstErrorIsSticky() {
        var decoder = FrameDecoder()
        decoder.feed(hex("f1f2"))
        #expect(throws: MotanCodecError.badMagic(found: 0xF1F2, offset: 0)) { try decoder.next() }
        decoder.feed(Self.heartbeat)
        #expect(throws: MotanCodecError.badMagic(found: 0xF1F2, offset: 0)) { try decoder.next() }
        #expect(throws: MotanCodecError.badMagic(found: 0xF1F2, offset: 0)) {
            try decoder.withNext { _ in 0 }
        }
    }

    @Test func descriptionsNameTheProblemAndTheOffset() {
        #expect(MotanCodecError.badMagic(found: 0xF1F2, offset: 7).description.contains("0xf1f2"))
        #expect(MotanCodecError.badMagic(found: 0xF1F2, offset: 7).description.contains("offset 7"))
        #expect(MotanCodecError.motanV1NotSupported(offset: 3).description.contains("Motan V1 not supported"))
        #expect(
            MotanCodecError.metaTooLarge(size: 11, limit: 10, offset: 13).description
                == "meta size 11 at stream offset 13 exceeds the limit of 10 bytes")
        #expect(MotanCodecError.unpairedMeta(fieldCount: 3, offset: 17).description.contains("3 fields"))
        #expect(MotanCodecError.badMagic(found: 0, offset: 0).isFramingError)
        #expect(!MotanCodecError.simpleUnknownTag(12, offset: 0).isFramingError)
    }

    @Test func decoderKeepsNoMoreThanItHasToAfterFrames() throws {
        var decoder = FrameDecoder()
        decoder.feed(Self.heartbeat + Self.heartbeat.prefix(5))
        #expect(try decoder.next() != nil)
        #expect(decoder.bufferedByteCount == 5)
        #expect(decoder.streamOffset == 21)
        decoder.feed(Array(Self.heartbeat.dropFirst(5)))
        #expect(try decoder.next()?.requestID == 2)
        #expect(decoder.bufferedByteCount == 0)
        #expect(decoder.streamOffset == 42)
    }
}
