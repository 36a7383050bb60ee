import Synchronization

/// What a registry subscriber heard, for the flip-latency tools: the size of each list a
/// notification carried and when it arrived.
public final class NotificationLog: Sendable {
    private let heard = Mutex<[(count: Int, at: ContinuousClock.Instant)]>([])

    public init() {}

    /// Call from the subscriber's listener.
    public func record(count: Int) {
        let now = ContinuousClock.now
        heard.withLock { $0.append((count, now)) }
    }

    /// Notifications so far.
    public var count: Int { heard.withLock { $0.count } }

    /// When the first notification after the first `seen` ones carried a list of `count` servers.
    public func arrival(ofCount count: Int, after seen: Int) async -> ContinuousClock.Instant {
        while true {
            let match = heard.withLock { list in list.dropFirst(seen).first { $0.count == count }?.at }
            if let match { return match }
            try? await Task.sleep(for: .microseconds(100))
        }
    }
}

/// Times `flips` switch flips (`flip(on)` turns the service on or off), each until `log` hears the
/// new list, spaced `gap` apart; returns the sorted latencies in milliseconds.
public func measureFlips(
    _ flips: Int, gap: Duration, log: NotificationLog, _ flip: (Bool) async throws -> Void
) async throws -> [Double] {
    var samples: [Double] = []
    for index in 0..<flips {
        if gap > .zero { try await Task.sleep(for: gap) }
        let on = index % 2 == 0
        let seen = log.count
        let start = ContinuousClock.now
        try await flip(on)
        let elapsed = await log.arrival(ofCount: on ? 1 : 0, after: seen) - start
        samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
    }
    return samples.sorted()
}

/// "p50 …, p99 …, min …, max …" of sorted millisecond samples.
public func latencySummary(_ sorted: [Double]) -> String {
    func percentile(_ p: Double) -> Double {
        sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
    }
    func ms(_ value: Double) -> String { String(Double(Int(value * 1000)) / 1000) + " ms" }
    return "p50 \(ms(percentile(0.5))), p99 \(ms(percentile(0.99))), min \(ms(sorted.first!)), max \(ms(sorted.last!))"
}
