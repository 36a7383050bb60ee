import Foundation
import MotanCodec
import MotanLoop
import MotanTestSupport
import Synchronization
import Testing

@testable import MotanTransport

#if canImport(Glibc)
    import Glibc
#endif

/// A server with a registry of the test's own making, and a loop for its peers.
final class ServerFixture: @unchecked Sendable {
    let group: UVEventLoopGroup
    let peerGroup = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "fixture-peer")
    let server: ServerEndpoint

    init(
        loops: Int = 1, configuration: ServerEndpoint.Configuration = .init(),
        _ register: (inout ServiceRegistry) -> Void
    ) throws {
        group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "fixture-server")
        var registry = ServiceRegistry()
        register(&registry)
        server = try ServerEndpoint(group: group, services: registry, configuration: configuration)
    }

    var address: TCPAddress { TCPAddress(host: "127.0.0.1", port: server.port) }

    func connectPeer() async throws -> BytePeer {
        try await BytePeer.connect(to: address, on: peerGroup.loops[0])
    }

    func shutdown() {
        peerGroup.syncShutdown()
        server.close()
        group.syncShutdown()
    }
}

/// A TCP peer that keeps the raw bytes it receives and counts its read callbacks, besides
/// decoding frames, so tests can compare wire bytes and see how answers were batched.
final class BytePeer: TCPConnectionDelegate, @unchecked Sendable {
    let frames = Box<[Frame]>([])
    let bytes = Box<[UInt8]>([])
    let reads = Box(0)
    let closeReason = Box<CloseReason?>(nil)
    let decodeError = Box<MotanCodecError?>(nil)
    private var decoder = FrameDecoder()
    private var connection: TCPConnection?
    let loop: UVEventLoop

    private init(loop: UVEventLoop) { self.loop = loop }

    static func connect(to address: TCPAddress, on loop: UVEventLoop) async throws -> BytePeer {
        let peer = BytePeer(loop: loop)
        let connection = try await TCPConnection.connect(to: address, on: loop, timeout: .seconds(2)) { peer }
        loop.runSync { peer.connection = connection }
        return peer
    }

    func send(_ bytes: [UInt8]) {
        loop.execute { self.connection?.writeAndFlush(bytes) }
    }

    func send(_ frame: Frame) {
        var bytes: [UInt8] = []
        FrameEncoder.encode(frame, into: &bytes)
        send(bytes)
    }

    /// Half-close: no more requests, answers still welcome.
    func shutdownWrite() {
        loop.execute { self.connection?.shutdownWrite() }
    }

    func close() {
        loop.runSync { self.connection?.close() }
    }

    var isClosed: Bool { closeReason.value != nil }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        reads.mutate { $0 += 1 }
        self.bytes.mutate { $0.append(contentsOf: bytes) }
        decoder.feed(bytes)
        do {
            while let frame = try decoder.next() { frames.mutate { $0.append(frame) } }
        } catch {
            decodeError.mutate { $0 = error }
        }
    }

    /// Keeps the connection open for answers still on their way after our half-close.
    func connectionDidReadEOF(_ connection: TCPConnection) {
        connection.close(.remoteClosed)
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {
        closeReason.mutate { $0 = reason }
    }

    func response(to requestID: UInt64, timeout: Duration = .seconds(3)) async -> Frame? {
        _ = await eventually(timeout: timeout) { frames.value.contains { $0.requestID == requestID } }
        return frames.value.first { $0.requestID == requestID }
    }

    func responses(to requestID: UInt64) -> [Frame] {
        frames.value.filter { $0.requestID == requestID }
    }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// A plain non-blocking socket, for a peer that must not read (no event loop behind it).
final class PlainSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit { Glibc.close(fd) }

    /// Bytes sent, 0 when the socket would block, nil on error.
    func send(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        if n >= 0 { return n }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : nil
    }

    /// Bytes read, 0 when nothing is there yet, nil on EOF or error.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let n = recv(fd, buffer.baseAddress, buffer.count, 0)
        if n > 0 { return n }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return 0 }
        return nil
    }
}

/// Request bodies a simple-serialization decoder must reject, with the gzip flag they go with.
/// `limit` is the server's content limit (for the body that inflates past it).
func undecodableBodies(limit: Int) throws -> [(name: String, body: [UInt8], gzip: Bool)] {
    let lyingString: [UInt8] = [1, 0, 0, 0, 100, 0x41]
    let lyingBytes: [UInt8] = [3, 0, 0, 0, 100, 1]
    let lyingArray: [UInt8] = [21, 0, 0, 0, 100, 0]
    let lyingMap: [UInt8] = [20, 0, 0, 0, 100, 0, 0]
    let lyingStringArray: [UInt8] = [4, 0, 0, 0, 100, 0, 0, 0, 1, 0x41]
    let lyingStringMap: [UInt8] = [2, 0, 0, 0, 100, 0, 0, 0, 1, 0x41]
    let unknownTag: [UInt8] = [0x7F]
    let varintOverflow: [UInt8] = [9] + [UInt8](repeating: 0xFF, count: 10)
    var deep: [UInt8] = []
    for level in 0..<100 {
        let remaining = UInt32((99 - level) * 5)
        deep += [
            21, UInt8(remaining >> 24), UInt8(truncatingIfNeeded: remaining >> 16),
            UInt8(truncatingIfNeeded: remaining >> 8), UInt8(truncatingIfNeeded: remaining),
        ]
    }
    let invalidGzip: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF]
    let bomb = try Gzip.compress([UInt8](repeating: 0, count: limit + 1))
    return [
        ("lying string length", lyingString, false),
        ("lying bytes length", lyingBytes, false),
        ("lying array length", lyingArray, false),
        ("lying map length", lyingMap, false),
        ("lying string array length", lyingStringArray, false),
        ("lying string map length", lyingStringMap, false),
        ("unknown tag", unknownTag, false),
        ("varint overflow", varintOverflow, false),
        ("nesting too deep", deep, false),
        ("invalid gzip", invalidGzip, true),
        ("gzip over the content limit", bomb, true),
    ]
}

/// A request frame carrying `body` as is.
func rawRequest(
    id: UInt64, service: String, method: String, body: [UInt8], gzip: Bool = false
) -> Frame {
    var frame = Frame.request(requestID: id, service: service, method: method)
    frame.body = body
    if gzip { frame.header.flags.insert(.gzip) }
    return frame
}
