import Testing

@testable import MotanCodec

struct MetaTests {
    @Test func keepsInsertionOrderAndLaterDuplicatesWinOnLookup() {
        var meta: Meta = ["M_p": "svc", "M_m": "hello"]
        meta.append("x", "1")
        meta.append("x", "2")
        #expect(
            pairs(meta) == [MetaPair("M_p", "svc"), MetaPair("M_m", "hello"), MetaPair("x", "1"), MetaPair("x", "2")])
        #expect(meta["x"] == "2")
        #expect(meta.count == 4)
        meta.withRawBytes { #expect(Array($0) == Array("M_p\nsvc\nM_m\nhello\nx\n1\nx\n2".utf8)) }
    }

    @Test func setReplacesInPlaceAndRemovesDuplicates() {
        var meta: Meta = ["a": "1", "b": "2", "c": "3"]
        meta.append("b", "4")
        let replaced = meta.set("b", "5")
        #expect(replaced)
        #expect(pairs(meta) == [MetaPair("a", "1"), MetaPair("b", "5"), MetaPair("c", "3")])
        meta["d"] = "6"
        meta["a"] = nil
        #expect(pairs(meta) == [MetaPair("b", "5"), MetaPair("c", "3"), MetaPair("d", "6")])
        #expect(meta.removeValue(forKey: "c") == "3")
        #expect(meta.removeValue(forKey: "zz") == nil)
        #expect(pairs(meta) == [MetaPair("b", "5"), MetaPair("d", "6")])
    }

    @Test func refusesPairsTheWireCannotCarry() {
        var meta = Meta()
        let accepted = [meta.append("", "v"), meta.append("k", ""), meta.append("k\n", "v"), meta.set("k", "a\nb")]
        #expect(accepted == [false, false, false, false])
        meta.service = ""
        #expect(meta.isEmpty)
        #expect(meta.encodedLength == 0)
    }

    @Test func typedAccessorsUseTheStandardKeys() {
        var meta = Meta()
        meta.service = "svc"
        meta.method = "m"
        meta.methodDescriptor = "java.lang.String,int"
        meta.group = "g"
        meta.version = "1.0"
        meta.source = "app"
        meta.module = "mod"
        meta.proxyProtocol = "motan2"
        meta.requestIDString = "42"
        meta.frameworkService = "fws"
        meta.auth = "token"
        meta.infoSign = "sig"
        meta.exception = "{}"
        meta.processTimeMillis = 12
        meta.timeoutMillis = 300
        #expect(
            pairs(meta).map(\.key) == [
                "M_p", "M_m", "M_md", "M_g", "M_v", "M_s", "M_mdu", "M_pp", "M_rid", "M_fws", "M_a", "M_is", "M_e",
                "M_pt", "M_tmo",
            ])
        #expect(meta["M_md"] == "java.lang.String,int")
        #expect(meta.processTime == "12")
        #expect(meta.timeoutMillis == 300)
        #expect(meta.auth == "token")
    }

    @Test func decodedMetaSharesStorageSafelyWithTheBody() throws {
        let frame = Frame.request(
            requestID: 1, service: "com.example.LongServiceNameThatNeedsHeapStorage", method: "m",
            arguments: ["argument"])
        var decoded = try decodeOne(encoded(frame))
        let metaBefore = decoded.meta
        // Growing and rewriting the body must never touch the meta bytes stored next to it.
        decoded.body.append(contentsOf: [UInt8](repeating: 0xEE, count: 64))
        for index in decoded.body.indices { decoded.body[index] = 0xAB }
        #expect(decoded.meta == metaBefore)
        #expect(decoded.meta.service == "com.example.LongServiceNameThatNeedsHeapStorage")
        var body = try decodeOne(encoded(frame)).body
        body.removeAll(keepingCapacity: true)
        body.append(contentsOf: [UInt8](repeating: 0xCD, count: 200))
        // Changing the meta leaves the body alone.
        var other = try decodeOne(encoded(frame))
        other.meta.append("extra", "value")
        other.meta.service = "s"
        #expect(other.body == frame.body)
        #expect(pairs(other.meta) == [MetaPair("M_p", "s"), MetaPair("M_m", "m"), MetaPair("extra", "value")])
    }

    @Test func decodedEmptyValuesSurviveButAreNeverSent() throws {
        let meta = Array("a\n\nb\n2".utf8)
        let frame = try decodeOne(hex("f1f1 00 08 30 0000000000000001") + be32(meta.count) + meta + be32(0))
        #expect(pairs(frame.meta) == [MetaPair("a", ""), MetaPair("b", "2")])
        #expect(frame.meta["a"] == "")
        let resent = try decodeOne(encoded(frame))
        #expect(pairs(resent.meta) == [MetaPair("b", "2")])
        #expect(frame.meta.encodedLength == 3)
    }

    @Test func iterationOfLargeMeta() {
        var meta = Meta()
        for index in 0..<200 { meta.append("key\(index)", String(repeating: "v", count: index + 1)) }
        #expect(meta.count == 200)
        #expect(
            Array(meta).enumerated().allSatisfy {
                $0.element.key == "key\($0.offset)" && $0.element.value.count == $0.offset + 1
            })
        #expect(meta["key150"]?.count == 151)
        #expect(meta.description.hasPrefix("[key0: v, key1: vv"))
    }
}

struct MotanErrorInfoTests {
    @Test func jsonUsesMotanGoMemberOrder() {
        let info = MotanErrorInfo(errcode: 500, errmsg: "method notExist is not found in provider.", errtype: 1)
        #expect(info.json == #"{"errcode":500,"errmsg":"method notExist is not found in provider.","errtype":1}"#)
        #expect(MotanErrorInfo(errcode: -3, errmsg: "", errtype: 0).json == #"{"errcode":-3,"errmsg":"","errtype":0}"#)
    }

    @Test func escapingKeepsTheMetaValueOnOneLine() {
        let info = MotanErrorInfo(errcode: 1, errmsg: "a \"quoted\"\nline\\ \u{1} 中", errtype: 2)
        #expect(info.json == #"{"errcode":1,"errmsg":"a \"quoted\"\nline\\ \u0001 中","errtype":2}"#)
        #expect(!info.json.utf8.contains(0x0A))
        #expect(MotanErrorInfo(json: info.json) == info)
        var frame = Frame.errorResponse(requestID: 1, error: info)
        frame = (try? decodeOne(encoded(frame))) ?? frame
        #expect(frame.errorInfo == info)
    }

    @Test func parsesAnyMemberOrderAndSkipsUnknownMembers() {
        #expect(
            MotanErrorInfo(json: #"{"errcode":30001,"errtype":2,"errmsg":"provider call process error"}"#)
                == MotanErrorInfo(errcode: 30001, errmsg: "provider call process error", errtype: 2))
        #expect(
            MotanErrorInfo(
                json:
                    #" { "errmsg" : "x\u4e2d\ud83d\ude00\/" , "extra":[1,{"a":null},true], "errtype":1, "errcode":404.0 } "#
            )
                == MotanErrorInfo(errcode: 404, errmsg: "x中😀/", errtype: 1))
        #expect(MotanErrorInfo(json: #"{}"#) == MotanErrorInfo(errcode: 0, errmsg: "", errtype: 0))
    }

    @Test func rejectsWhatIsNotAJSONObject() {
        for text in [
            "", "provider call panic", "{", #"{"errcode":}"#, #"{"errcode":1}x"#, "[1]", #"{"errmsg":"unterminated}"#,
        ] {
            #expect(MotanErrorInfo(json: text) == nil, "\(text)")
            #expect(MotanErrorInfo(lenientJSON: text) == MotanErrorInfo(errcode: 10001, errmsg: text, errtype: 1))
        }
        #expect(MotanErrorInfo(lenientJSON: nil) == MotanErrorInfo(errcode: 10001, errmsg: "", errtype: 1))
    }
}
