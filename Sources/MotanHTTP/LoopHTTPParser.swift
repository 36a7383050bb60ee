/// Why bytes did not form an HTTP/1.1 message. Each maps to the status a server answers with.
public enum LoopHTTPParseError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformedStartLine
    case unsupportedVersion
    case malformedHeader
    case headersTooLarge(limit: Int)
    case tooManyHeaders(limit: Int)
    case bodyTooLarge(limit: Int)
    case invalidContentLength
    /// A transfer coding other than `chunked` (we decode no compression).
    case unsupportedTransferEncoding(String)
    /// Both `Content-Length` and `Transfer-Encoding`: refused, as request smuggling relies on it.
    case conflictingFraming
    case malformedChunk
    /// The stream ended inside a message.
    case truncated

    /// The status a server answers this error with.
    public var status: Int {
        switch self {
        case .bodyTooLarge: 413
        case .headersTooLarge, .tooManyHeaders: 431
        case .unsupportedTransferEncoding: 501
        case .unsupportedVersion: 505
        default: 400
        }
    }

    public var description: String {
        switch self {
        case .malformedStartLine: "malformed start line"
        case .unsupportedVersion: "unsupported HTTP version"
        case .malformedHeader: "malformed header line"
        case .headersTooLarge(let limit): "header section larger than \(limit) bytes"
        case .tooManyHeaders(let limit): "more than \(limit) header fields"
        case .bodyTooLarge(let limit): "body larger than \(limit) bytes"
        case .invalidContentLength: "invalid Content-Length"
        case .unsupportedTransferEncoding(let coding): "unsupported transfer coding '\(coding)'"
        case .conflictingFraming: "both Content-Length and Transfer-Encoding"
        case .malformedChunk: "malformed chunk"
        case .truncated: "stream ended inside a message"
        }
    }
}

/// Bounds on what one message may hold, so a peer cannot make a connection buffer without limit.
public struct LoopHTTPLimits: Sendable, Hashable {
    /// Request or status line plus header fields (and chunked trailers).
    public var maxHeaderBytes: Int
    public var maxHeaderCount: Int
    public var maxBodyBytes: Int

    public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

/// Incremental request parser: feed bytes as they arrive, take whole requests out one at a time.
/// Bytes after a request stay buffered for the next one, so pipelined requests are never lost.
public struct LoopHTTPRequestParser: Sendable {
    private var framer: MessageFramer

    public init(limits: LoopHTTPLimits = LoopHTTPLimits()) {
        framer = MessageFramer(role: .request, limits: limits)
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) { framer.append(bytes) }
    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { framer.append($0) } }

    /// The next complete request, or nil until more bytes arrive. After an error the parser stays failed.
    public mutating func next() throws(LoopHTTPParseError) -> LoopHTTPRequest? {
        guard let (head, body) = try framer.next() else { return nil }
        return LoopHTTPRequest(
            method: head.first, target: head.second, headers: head.headers, body: body,
            minorVersion: head.minorVersion)
    }

    /// The peer closed its side: an error if a request was under way.
    public mutating func finish() throws(LoopHTTPParseError) {
        if try framer.finish() != nil { preconditionFailure("requests never end at EOF") }
    }

    /// Bytes held: a partial request, or requests pipelined behind the current one.
    public var bufferedBytes: Int { framer.bufferedBytes }
    /// True when nothing of a next request has arrived.
    public var isIdle: Bool { framer.isIdle }
}

/// Incremental response parser. Set `nextResponseHasNoBody` before a response to HEAD.
public struct LoopHTTPResponseParser: Sendable {
    private var framer: MessageFramer

    public init(limits: LoopHTTPLimits = LoopHTTPLimits(maxBodyBytes: 64 << 20)) {
        framer = MessageFramer(role: .response, limits: limits)
    }

    public var nextResponseHasNoBody: Bool {
        get { framer.bodilessResponse }
        set { framer.bodilessResponse = newValue }
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) { framer.append(bytes) }
    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { framer.append($0) } }

    /// The next complete response (interim 1xx ones included), or nil until more bytes arrive.
    public mutating func next() throws(LoopHTTPParseError) -> LoopHTTPResponse? {
        guard let (head, body) = try framer.next() else { return nil }
        return Self.response(head, body)
    }

    /// The peer closed its side: completes a response delimited by the close, or throws if one
    /// was cut short; nil when nothing was under way.
    public mutating func finish() throws(LoopHTTPParseError) -> LoopHTTPResponse? {
        guard let (head, body) = try framer.finish() else { return nil }
        return Self.response(head, body)
    }

    private static func response(_ head: MessageFramer.Head, _ body: [UInt8]) -> LoopHTTPResponse {
        LoopHTTPResponse(
            status: Int(head.second) ?? 0, reason: head.third, headers: head.headers, body: body,
            minorVersion: head.minorVersion)
    }

    public var bufferedBytes: Int { framer.bufferedBytes }
    public var isIdle: Bool { framer.isIdle }
}

/// The shared machinery: finds the head, decides the body's framing, collects the body.
struct MessageFramer: Sendable {
    enum Role: Sendable { case request, response }

    struct Head: Sendable {
        /// Request: method, target, version. Response: version, status, reason.
        var first: String
        var second: String
        var third: String
        var minorVersion: Int
        var headers: LoopHTTPHeaders
    }

    private enum State: Sendable {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    let role: Role
    let limits: LoopHTTPLimits
    var bodilessResponse = false

    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the end of the head resumes, so a head arriving a byte at a time is
    /// scanned once in total, not once per byte.
    private var scanned = 0
    private var trailerBytes = 0
    private var state = State.head
    private var head: Head?
    private var body: [UInt8] = []
    private var failure: LoopHTTPParseError?

    init(role: Role, limits: LoopHTTPLimits) {
        self.role = role
        self.limits = limits
    }

    var bufferedBytes: Int { buffer.count - start + body.count }
    var isIdle: Bool {
        if case .head = state { return buffer.count == start }
        return false
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            start = 0
            scanned = 0
        } else if start >= 4096 && start * 2 >= buffer.count {
            buffer.removeFirst(start)
            scanned -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    mutating func next() throws(LoopHTTPParseError) -> (Head, [UInt8])? {
        if let failure { throw failure }
        do {
            return try step()
        } catch {
            failure = error
            throw error
        }
    }

    mutating func finish() throws(LoopHTTPParseError) -> (Head, [UInt8])? {
        if let failure { throw failure }
        switch state {
        case .head:
            // Blank lines between messages are allowed; anything else is a cut-off head.
            if buffer[start...].allSatisfy({ $0 == 13 || $0 == 10 }) { return nil }
            failure = .truncated
            throw .truncated
        case .untilClose:
            body.append(contentsOf: buffer[start...])
            start = buffer.count
            return complete()
        default:
            failure = .truncated
            throw .truncated
        }
    }

    private mutating func step() throws(LoopHTTPParseError) -> (Head, [UInt8])? {
        while true {
            switch state {
            case .head:
                guard try parseHead() else { return nil }
                if let done = try beginBody() { return done }
            case .fixed(let remaining):
                let take = min(remaining, buffer.count - start)
                body.append(contentsOf: buffer[start..<start + take])
                start += take
                if take == remaining { return complete() }
                state = .fixed(remaining: remaining - take)
                return nil
            case .chunkSize:
                guard let line = try takeLine(limit: 1024, error: .malformedChunk) else { return nil }
                let digits = line.prefix { $0 != UInt8(ascii: ";") }.trimmingSpaceBytes
                guard !digits.isEmpty, digits.count <= 15,
                    let size = Int(String(decoding: digits, as: UTF8.self), radix: 16)
                else { throw .malformedChunk }
                if size == 0 {
                    trailerBytes = 0
                    state = .trailers
                } else {
                    guard body.count + size <= limits.maxBodyBytes else {
                        throw .bodyTooLarge(limit: limits.maxBodyBytes)
                    }
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                let take = min(remaining, buffer.count - start)
                body.append(contentsOf: buffer[start..<start + take])
                start += take
                if take < remaining {
                    state = .chunkData(remaining: remaining - take)
                    return nil
                }
                state = .chunkDataEnd
            case .chunkDataEnd:
                guard let line = try takeLine(limit: 2, error: .malformedChunk) else { return nil }
                guard line.isEmpty else { throw .malformedChunk }
                state = .chunkSize
            case .trailers:
                // Trailer fields are read and dropped: nothing here uses them.
                let before = start
                guard
                    let line = try takeLine(
                        limit: limits.maxHeaderBytes, error: .headersTooLarge(limit: limits.maxHeaderBytes))
                else { return nil }
                trailerBytes += start - before
                guard trailerBytes <= limits.maxHeaderBytes else {
                    throw .headersTooLarge(limit: limits.maxHeaderBytes)
                }
                if line.isEmpty { return complete() }
            case .untilClose:
                body.append(contentsOf: buffer[start...])
                start = buffer.count
                guard body.count <= limits.maxBodyBytes else { throw .bodyTooLarge(limit: limits.maxBodyBytes) }
                return nil
            }
        }
    }

    private mutating func complete() -> (Head, [UInt8]) {
        let done = (head!, body)
        head = nil
        body = []
        state = .head
        bodilessResponse = false
        return done
    }

    /// One line ending in LF (a preceding CR dropped), or nil if it has not fully arrived.
    private mutating func takeLine(limit: Int, error: LoopHTTPParseError) throws(LoopHTTPParseError) -> ArraySlice<
        UInt8
    >? {
        guard let lf = buffer[start...].firstIndex(of: 10) else {
            if buffer.count - start > limit { throw error }
            return nil
        }
        var line = buffer[start..<lf]
        if line.last == 13 { line = line.dropLast() }
        guard line.count <= limit else { throw error }
        start = lf + 1
        return line
    }

    /// Finds a complete head and parses it into `head`; false while it is still arriving.
    private mutating func parseHead() throws(LoopHTTPParseError) -> Bool {
        // Tolerate blank lines before a message (RFC 9112 §2.2), e.g. a CRLF sent after a body.
        while start < buffer.count, buffer[start] == 13 || buffer[start] == 10 { start += 1 }
        scanned = max(scanned, start)
        var end: Int?
        var i = scanned
        while i < buffer.count {
            if buffer[i] == 10 {
                if i + 1 < buffer.count, buffer[i + 1] == 10 {
                    end = i + 2
                    break
                }
                if i + 2 < buffer.count, buffer[i + 1] == 13, buffer[i + 2] == 10 {
                    end = i + 3
                    break
                }
                if i + 2 >= buffer.count { break }  // the blank line may still be arriving
            }
            i += 1
        }
        guard let end else {
            scanned = max(start, i)
            if buffer.count - start > limits.maxHeaderBytes { throw .headersTooLarge(limit: limits.maxHeaderBytes) }
            return false
        }
        guard end - start <= limits.maxHeaderBytes else { throw .headersTooLarge(limit: limits.maxHeaderBytes) }
        var lines = buffer[start..<end].split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? line.dropLast() : line
        }
        start = end
        scanned = end
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let startLine = lines.first else { throw .malformedStartLine }
        var parsed = try parseStartLine(startLine)
        guard lines.count - 1 <= limits.maxHeaderCount else { throw .tooManyHeaders(limit: limits.maxHeaderCount) }
        for line in lines.dropFirst() {
            // Obsolete line folding and whitespace before the colon are both refused (RFC 9112 §5).
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(Self.isTokenByte)
            else { throw .malformedHeader }
            let value = line[(colon + 1)...].trimmingSpaceBytes
            guard !value.contains(where: { $0 < 32 && $0 != 9 || $0 == 127 }) else { throw .malformedHeader }
            parsed.headers.add(
                String(decoding: line[line.startIndex..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
        head = parsed
        return true
    }

    private func parseStartLine(_ line: ArraySlice<UInt8>) throws(LoopHTTPParseError) -> Head {
        let parts = line.split(separator: 32, maxSplits: 2, omittingEmptySubsequences: false)
        switch role {
        case .request:
            guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(Self.isTokenByte), !parts[1].isEmpty,
                parts[1].allSatisfy({ $0 > 32 && $0 < 127 })
            else { throw .malformedStartLine }
            let minor = try Self.version(parts[2])
            return Head(
                first: String(decoding: parts[0], as: UTF8.self), second: String(decoding: parts[1], as: UTF8.self),
                third: String(decoding: parts[2], as: UTF8.self), minorVersion: minor, headers: [:])
        case .response:
            guard parts.count >= 2, parts[1].count == 3, parts[1].allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                throw .malformedStartLine
            }
            let minor = try Self.version(parts[0])
            return Head(
                first: String(decoding: parts[0], as: UTF8.self), second: String(decoding: parts[1], as: UTF8.self),
                third: parts.count > 2 ? String(decoding: parts[2], as: UTF8.self) : "", minorVersion: minor,
                headers: [:])
        }
    }

    private static func version(_ text: ArraySlice<UInt8>) throws(LoopHTTPParseError) -> Int {
        let prefix = Array("HTTP/1.".utf8)
        guard text.count == 8, text.starts(with: prefix) else {
            if text.starts(with: Array("HTTP/".utf8)) { throw .unsupportedVersion }
            throw .malformedStartLine
        }
        switch text.last! {
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "1"): return 1
        default: throw .unsupportedVersion
        }
    }

    /// Chooses the body's framing from the head (RFC 9112 §6.3); returns a message without a body at once.
    private mutating func beginBody() throws(LoopHTTPParseError) -> (Head, [UInt8])? {
        let headers = head!.headers
        let codings = headers.values("Transfer-Encoding").flatMap { $0.split(separator: ",") }
            .map { $0.trimmingSpaces.lowercasedASCII }.filter { !$0.isEmpty }
        let lengths = headers.values("Content-Length").flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces }
        if role == .response {
            let status = Int(head!.second) ?? 0
            if bodilessResponse || (100..<200).contains(status) || status == 204 || status == 304 {
                return complete()
            }
        }
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw .conflictingFraming }
            guard codings.last == "chunked" else {
                if role == .response {
                    state = .untilClose
                    return nil
                }
                throw .unsupportedTransferEncoding(codings.last!)
            }
            guard codings.count == 1 else { throw .unsupportedTransferEncoding(codings.first!) }
            state = .chunkSize
            return nil
        }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.count <= 18,
                first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = Int(first)
            else { throw .invalidContentLength }
            guard length <= limits.maxBodyBytes else { throw .bodyTooLarge(limit: limits.maxBodyBytes) }
            if length == 0 { return complete() }
            state = .fixed(remaining: length)
            return nil
        }
        if role == .response {
            state = .untilClose
            return nil
        }
        return complete()
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

extension ArraySlice<UInt8> {
    fileprivate var trimmingSpaceBytes: ArraySlice<UInt8> {
        var slice = self
        while let first = slice.first, first == 32 || first == 9 { slice = slice.dropFirst() }
        while let last = slice.last, last == 32 || last == 9 { slice = slice.dropLast() }
        return slice
    }
}
