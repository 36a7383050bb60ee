import Testing

@testable import MotanCodec

/// Inputs found by the fuzzer (Fuzz/FuzzTarget.swift), kept so they stay fixed.
struct FuzzRegressionTests {
    /// A meta key that is not valid UTF-8 (a motan-php request with bytes flipped inside
    /// `requestIdFromClient`). It must survive decode and re-encode byte for byte, stay visible
    /// to the raw view, and not disturb lookups of the other keys.
    @Test func metaKeyWithInvalidUTF8() throws {
        let meta =
            Array("M_p\ncom.weibo.HelloMTService\nM_m\nHello\nM_g\nmotan-demo-rpc\nM_pp\nmotan2\nreq".utf8)
            + [0x8B, 0x9A, 0x8C, 0x8D] + Array("IdFromClient\n1\nSERIALIZATION\nsimple".utf8)
        let bytes =
            hex("f1f1 00 08 30 0000000000000001") + be32(meta.count) + meta
            + hex("0000000c 0100000007746573746d7367")
        let frame = try decodeOne(bytes)
        #expect(encoded(frame) == bytes)
        #expect(frame.meta.count == 6)
        #expect(frame.meta.method == "Hello")
        #expect(frame.meta["SERIALIZATION"] == "simple")
        var decoder = FrameDecoder()
        decoder.feed(bytes)
        let rawKeys = try decoder.withNext { view -> [[UInt8]] in
            var keys: [[UInt8]] = []
            view.forEachMetaPair { key, _ in keys.append(Array(key)) }
            return keys
        }
        #expect(rawKeys?[4] == Array("req".utf8) + [0x8B, 0x9A, 0x8C, 0x8D] + Array("IdFromClient".utf8))
    }
}
