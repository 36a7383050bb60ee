import MotanHTTP
import Testing

@Suite("HTTP/1.1 parser and serializer")
struct ParserTests {
    static let pipelined = Array(
        ("PUT /v1/agent/service/register?replace=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
            + "GET /v1/health/service/x?passing&index=7 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").utf8)

    static let chunked = Array(
        ("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n1\r\n \r\nb\r\nchunked wor\r\n2\r\nld\r\n0\r\nTrailer: x\r\n\r\n"
            + "GET /next HTTP/1.1\r\n\r\n").utf8)

    private func parseAll(_ pieces: [ArraySlice<UInt8>]) throws -> [LoopHTTPRequest] {
        var parser = LoopHTTPRequestParser()
        var out: [LoopHTTPRequest] = []
        for piece in pieces {
            parser.append(Array(piece))
            while let request = try parser.next() { out.append(request) }
        }
        return out
    }

    private func checkEverySplit(_ bytes: [UInt8], _ verify: ([LoopHTTPRequest]) -> Void) throws {
        verify(try parseAll(bytes.indices.map { bytes[$0...$0] }))  // one byte at a time
        for split in 0...bytes.count {
            verify(try parseAll([bytes[..<split], bytes[split...]]))
        }
    }

    @Test("pipelined requests come out whole and in order, however the bytes are split")
    func pipelinedEverySplit() throws {
        try checkEverySplit(Self.pipelined) { requests in
            #expect(requests.count == 2)
            guard requests.count == 2 else { return }
            #expect(requests[0].method == "PUT")
            #expect(requests[0].path == "/v1/agent/service/register")
            #expect(requests[0].body == Array("hello world".utf8))
            #expect(requests[0].keepAlive)
            #expect(requests[1].method == "GET")
            #expect(requests[1].queryItems.map(\.name) == ["passing", "index"])
            #expect(requests[1].queryItems[1].value == "7")
            #expect(requests[1].queryItems[0].value == nil)
            #expect(!requests[1].keepAlive)
        }
    }

    @Test("chunked bodies with extensions and trailers, split at every byte")
    func chunkedEverySplit() throws {
        try checkEverySplit(Self.chunked) { requests in
            #expect(requests.map(\.target) == ["/c", "/next"])
            #expect(requests.first?.body == Array("hello chunked world".utf8))
        }
    }

    @Test("responses: content-length, chunked, until close, bodiless")
    func responses() throws {
        var parser = LoopHTTPResponseParser()
        parser.append(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Consul-Index: 5\r\n\r\n[]".utf8))
        let first = try #require(try parser.next())
        #expect(first.status == 200 && first.bodyText == "[]" && first.headers["x-consul-index"] == "5")
        parser.append(Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".utf8))
        #expect(try parser.next()?.status == 100)
        #expect(try parser.next()?.status == 204)
        parser.nextResponseHasNoBody = true
        parser.append(Array("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n".utf8))
        #expect(try parser.next()?.body == [])
        parser.append(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".utf8))
        #expect(try parser.next()?.bodyText == "abc")
        parser.append(Array("HTTP/1.0 200 OK\r\n\r\nuntil the end".utf8))
        #expect(try parser.next() == nil)
        let last = try #require(try parser.finish())
        #expect(last.bodyText == "until the end" && !last.keepAlive)
    }

    @Test(
        "malformed input gives a typed error with the right status",
        arguments: [
            ("GET /\r\n\r\n", LoopHTTPParseError.malformedStartLine),
            ("GET / HTTP/2.0\r\n\r\n", .unsupportedVersion),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nName : x\r\n\r\n", .malformedHeader),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", .malformedHeader),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", .conflictingFraming),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferEncoding("gzip")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n", .malformedChunk),
            ("POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", .bodyTooLarge(limit: 1000)),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n", .bodyTooLarge(limit: 1000)),
        ])
    func malformed(input: String, expected: LoopHTTPParseError) {
        var parser = LoopHTTPRequestParser(limits: LoopHTTPLimits(maxHeaderBytes: 256, maxBodyBytes: 1000))
        parser.append(Array(input.utf8))
        #expect(throws: expected) { _ = try parser.next() }
        // A failed parser stays failed: nothing after the bad bytes is ever taken as a request.
        parser.append(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(throws: expected) { _ = try parser.next() }
    }

    @Test("header limits hold even when the end of the head never comes")
    func headerLimits() throws {
        var parser = LoopHTTPRequestParser(limits: LoopHTTPLimits(maxHeaderBytes: 256, maxHeaderCount: 3))
        parser.append(Array("GET / HTTP/1.1\r\n".utf8))
        var thrown: LoopHTTPParseError?
        for _ in 0..<100 where thrown == nil {
            parser.append(Array("X-Filler: 0123456789\r\n".utf8))
            do { _ = try parser.next() } catch { thrown = error }
        }
        #expect(thrown == .headersTooLarge(limit: 256))
        #expect(thrown?.status == 431)
        #expect(parser.bufferedBytes < 512)

        var counted = LoopHTTPRequestParser(limits: LoopHTTPLimits(maxHeaderCount: 3))
        counted.append(Array("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n".utf8))
        #expect(throws: LoopHTTPParseError.tooManyHeaders(limit: 3)) { _ = try counted.next() }
    }

    @Test("EOF inside a message is reported, between messages it is not")
    func truncation() throws {
        var parser = LoopHTTPRequestParser()
        parser.append(Array("GET / HTTP/1.1\r\n\r\n\r\n".utf8))
        #expect(try parser.next() != nil)
        try parser.finish()
        var cut = LoopHTTPRequestParser()
        cut.append(Array("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".utf8))
        #expect(try cut.next() == nil)
        #expect(throws: LoopHTTPParseError.truncated) { try cut.finish() }
    }

    @Test("serialized messages parse back to the same message")
    func roundTrip() throws {
        let request = LoopHTTPRequest(
            method: "PUT", target: "/v1/kv/a%2Fb?cas=0", headers: ["Content-Type": "application/json"],
            body: Array("{\"a\":1}".utf8))
        var requests = LoopHTTPRequestParser()
        requests.append(LoopHTTPSerializer.serialize(request, host: "127.0.0.1:8500"))
        let parsed = try #require(try requests.next())
        #expect(parsed.body == request.body && parsed.target == request.target)
        #expect(parsed.headers["content-length"] == "7" && parsed.headers["host"] == "127.0.0.1:8500")

        let empty = try #require(
            try {
                var p = LoopHTTPRequestParser()
                p.append(LoopHTTPSerializer.serialize(LoopHTTPRequest(method: "PUT", target: "/x")))
                return try p.next()
            }())
        #expect(empty.headers["Content-Length"] == "0")

        var chunkedResponse = LoopHTTPResponse(status: 200, text: "streamed")
        chunkedResponse.headers.set("Transfer-Encoding", "chunked")
        var responses = LoopHTTPResponseParser()
        responses.append(LoopHTTPSerializer.serialize(chunkedResponse))
        responses.append(LoopHTTPSerializer.serialize(LoopHTTPResponse(status: 405, text: "method not allowed")))
        #expect(try responses.next()?.bodyText == "streamed")
        let second = try #require(try responses.next())
        #expect(
            second.status == 405 && second.reason == "Method Not Allowed" && second.bodyText == "method not allowed")
    }

    @Test("percent escapes")
    func percent() {
        #expect(LoopHTTPPercent.decode("a%2Fb%3a%zz") == "a/b:%zz")
        #expect(LoopHTTPPercent.encode("a b/c:d", keeping: "/:") == "a%20b/c:d")
    }
}
