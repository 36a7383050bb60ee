import Dispatch
import MotanCodec
import MotanLoop

/// Drives one connection with a pre-encoded Motan2 request, keeping `depth` in flight, and only
/// counts the response frames by their size fields. The client does no decoding and allocates
/// nothing per round trip, so the mallocs a run shows are the server's.
final class MotanFrameLoadClient: TCPConnectionDelegate, @unchecked Sendable {
    private let request: [UInt8]
    private let depth: Int
    private var quota = 0
    private var deadline: UInt64 = 0
    private var sent = 0
    private var completed = 0
    /// Bytes of a response that arrived split across reads.
    private var pending: [UInt8] = []
    private var sendTimes: [UInt64]
    private var head = 0
    let latencies: LatencyRecorder
    private var done: ((Int) -> Void)?

    init(request: [UInt8], depth: Int) {
        self.request = request
        self.depth = depth
        sendTimes = [UInt64](repeating: 0, count: depth)
        latencies = LatencyRecorder()
        pending.reserveCapacity(64 * 1024)
    }

    func run(on connection: TCPConnection, roundTrips: Int, deadline: UInt64, completion: @escaping (Int) -> Void) {
        quota = roundTrips
        self.deadline = deadline
        sent = 0
        completed = 0
        done = completion
        for _ in 0..<min(depth, quota) { send(on: connection) }
        connection.flush()
    }

    private func send(on connection: TCPConnection) {
        sendTimes[(head + sent - completed) % depth] = DispatchTime.now().uptimeNanoseconds
        sent += 1
        request.withUnsafeBytes { connection.write($0) }
    }

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
        let now = DispatchTime.now().uptimeNanoseconds
        var offset = 0
        var sentAny = false
        while let length = frameLength(at: offset), pending.count - offset >= length {
            offset += length
            latencies.record(now - sendTimes[head])
            head = (head + 1) % depth
            completed += 1
            if sent < quota && now < deadline {
                send(on: connection)
                sentAny = true
            }
        }
        pending.removeSubrange(0..<offset)
        if sentAny { connection.flush() }
        if completed == sent && (sent == quota || now >= deadline) { finish() }
    }

    /// 21 + meta + body, once both size fields are in.
    private func frameLength(at offset: Int) -> Int? {
        let available = pending.count - offset
        guard available >= 17 else { return nil }
        let meta = size(at: offset + 13)
        guard available >= 21 + meta else { return nil }
        return 21 + meta + size(at: offset + 17 + meta)
    }

    private func size(at index: Int) -> Int {
        Int(pending[index]) << 24 | Int(pending[index + 1]) << 16 | Int(pending[index + 2]) << 8
            | Int(pending[index + 3])
    }

    private func finish() {
        let done = self.done
        self.done = nil
        done?(completed)
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) { finish() }
}

/// Round-trip times in a preallocated ring, so recording never allocates.
final class LatencyRecorder: @unchecked Sendable {
    private var samples = [UInt64](repeating: 0, count: 1 << 20)
    private var count = 0

    func record(_ nanoseconds: UInt64) {
        samples[count & (samples.count - 1)] = nanoseconds
        count += 1
    }

    func reset() { count = 0 }

    /// Percentiles of the recorded samples (the newest 2^20 at most).
    func percentiles(_ wanted: [Double]) -> [UInt64] {
        let sorted = samples[0..<min(count, samples.count)].sorted()
        guard !sorted.isEmpty else { return wanted.map { _ in 0 } }
        return wanted.map { sorted[min(sorted.count - 1, Int(Double(sorted.count) * $0 / 100))] }
    }
}
