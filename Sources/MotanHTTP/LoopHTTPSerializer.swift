/// Writes requests and responses in HTTP/1.1 form. Framing headers are the serializer's job:
/// a `Content-Length` the caller set is replaced by the body's real length, unless the caller
/// asked for `Transfer-Encoding: chunked`, in which case the body goes out as one chunk.
public enum LoopHTTPSerializer {
    public static func serialize(_ request: LoopHTTPRequest, host: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + request.body.count)
        out += Array("\(request.method) \(request.target) HTTP/1.\(request.minorVersion)\r\n".utf8)
        var headers = request.headers
        if let host, headers["Host"] == nil { headers.add("Host", host) }
        // A body-less PUT or POST still says so, as some servers answer 411 otherwise.
        let bodyExpected = !request.body.isEmpty || request.method == "PUT" || request.method == "POST"
        appendBody(request.body, headers: &headers, bodyExpected: bodyExpected, into: &out)
        return out
    }

    public static func serialize(_ response: LoopHTTPResponse, bodyAllowed: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + response.body.count)
        out += Array("HTTP/1.\(response.minorVersion) \(response.status) \(response.reason)\r\n".utf8)
        var headers = response.headers
        let bodiless = (100..<200).contains(response.status) || response.status == 204 || response.status == 304
        if bodiless || !bodyAllowed {
            headers.remove("Transfer-Encoding")
            if bodiless { headers.remove("Content-Length") }
            appendHeaders(headers, into: &out)
            return out
        }
        appendBody(response.body, headers: &headers, bodyExpected: true, into: &out)
        return out
    }

    private static func appendBody(
        _ body: [UInt8], headers: inout LoopHTTPHeaders, bodyExpected: Bool, into out: inout [UInt8]
    ) {
        if headers.contains("Transfer-Encoding", token: "chunked") {
            headers.remove("Content-Length")
            appendHeaders(headers, into: &out)
            if !body.isEmpty {
                out += Array("\(String(body.count, radix: 16))\r\n".utf8)
                out += body
                out += [13, 10]
            }
            out += Array("0\r\n\r\n".utf8)
            return
        }
        headers.remove("Content-Length")
        if bodyExpected { headers.add("Content-Length", "\(body.count)") }
        appendHeaders(headers, into: &out)
        out += body
    }

    private static func appendHeaders(_ headers: LoopHTTPHeaders, into out: inout [UInt8]) {
        for field in headers {
            out += Array(field.name.utf8)
            out += [58, 32]
            out += Array(field.value.utf8)
            out += [13, 10]
        }
        out += [13, 10]
    }
}
