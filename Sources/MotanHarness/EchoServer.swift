import MotanLoop

/// Server side of the raw echo harness: frames are a 4-byte big-endian length and a payload; each
/// complete frame is written back, and everything echoed in one read goes out in one flush. This is
/// the "raw libuv" baseline the RPC transport is measured against.
public final class LengthPrefixedEchoHandler: TCPConnectionDelegate, @unchecked Sendable {
    /// Bytes of a frame that arrived split across reads. Reused, so steady state allocates nothing.
    private var partial: [UInt8] = []
    private let maxFrame: Int

    public init(maxFrame: Int = 16 << 20) {
        self.maxFrame = maxFrame
        partial.reserveCapacity(4096)
    }

    public func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        var input = bytes
        if !partial.isEmpty {
            // Complete the frame held over from earlier reads first: its header, then the payload
            // the header announces (the length is only known once all four bytes are in).
            if partial.count < 4 {
                input = take(4 - partial.count, from: input)
                guard partial.count == 4 else { return }
                guard checkLength(frameLength(partial), connection) else { return }
            }
            input = take(frameLength(partial) - partial.count, from: input)
            guard partial.count == frameLength(partial) else { return }
            partial.withUnsafeBytes { connection.write($0) }
            partial.removeAll(keepingCapacity: true)
        }
        while input.count >= 4 {
            let length = 4 + Int(input.loadUnaligned(as: UInt32.self).bigEndian)
            guard checkLength(length, connection) else { return }
            guard input.count >= length else { break }
            connection.write(UnsafeRawBufferPointer(rebasing: input.prefix(length)))
            input = UnsafeRawBufferPointer(rebasing: input.dropFirst(length))
        }
        partial.append(contentsOf: input)
        connection.flush()
    }

    /// Moves up to `count` bytes of `input` into `partial`; returns the rest.
    private func take(_ count: Int, from input: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let taken = Swift.min(count, input.count)
        partial.append(contentsOf: input.prefix(taken))
        return UnsafeRawBufferPointer(rebasing: input.dropFirst(taken))
    }

    private func checkLength(_ length: Int, _ connection: TCPConnection) -> Bool {
        guard length - 4 > maxFrame else { return true }
        connection.close(.protocolViolation("echo frame of \(length - 4) bytes exceeds \(maxFrame)"))
        return false
    }

    /// Length of the frame whose start is in `bytes`; a header still incomplete counts as 4 bytes.
    private func frameLength(_ bytes: [UInt8]) -> Int {
        guard bytes.count >= 4 else { return 4 }
        return 4 + (Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3]))
    }

    public func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}
