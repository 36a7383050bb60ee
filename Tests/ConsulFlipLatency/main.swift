// Measures how long a switch flip takes to reach a subscriber: `available(nil)` / `unavailable(nil)`
// on one registry, until a second registry's subscriber hears the new list through its blocking
// query, against the Consul-agent stand-in on 127.0.0.1. Prints p50/p99; asserts nothing.
//
//   swift run ConsulFlipLatency [flips] [gap-ms]
//
// Flips are spaced by `gap-ms` (default 200) so the lookup rate limit (10 queries/s, burst 2) has
// refilled, as it would between real flips; with a gap of 0 the numbers show that limit instead.
import ConsulAgentStandIn
import Foundation
import MotanConsul
import MotanLoop
import MotanRegistry
import Synchronization

let flips = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 100
let gap = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 200
let standIn = try ConsulAgentStandIn()
let serverLoops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "flip-server")
let clientLoops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "flip-client")
let server = try ConsulRegistry(address: standIn.registryAddress, loop: serverLoops.loops[0])
let client = try ConsulRegistry(address: standIn.registryAddress, loop: clientLoops.loops[0])
let url = MotanURL(
    protocol: "motan2", host: "127.0.0.1", port: 18_100, path: "com.example.Latency",
    parameters: ["group": "latency", "nodeType": "service"])

/// The list each notification carried and when it arrived.
let heard = Mutex<[(count: Int, at: ContinuousClock.Instant)]>([])
let clock = ContinuousClock()

try await server.register(url)
_ = try await client.subscribe(url) { urls in
    let now = clock.now
    heard.withLock { $0.append((urls.count, now)) }
}

func waitFor(count: Int, after seen: Int) async -> ContinuousClock.Instant {
    while true {
        let match = heard.withLock { list in list.dropFirst(seen).first { $0.count == count }?.at }
        if let match { return match }
        try? await Task.sleep(for: .microseconds(200))
    }
}

var samples: [Double] = []
for flip in 0..<flips {
    if gap > 0 { try await Task.sleep(for: .milliseconds(gap)) }
    let on = flip % 2 == 0
    let seen = heard.withLock { $0.count }
    let start = clock.now
    if on { try await server.available(nil) } else { try await server.unavailable(nil) }
    let arrived = await waitFor(count: on ? 1 : 0, after: seen)
    let elapsed = arrived - start
    samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
}

samples.sort()
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))]
}
print(
    String(
        format:
            "flip → subscriber notification over %d flips, %d ms apart: p50 %.3f ms, p99 %.3f ms, min %.3f ms, max %.3f ms",
        samples.count, gap, percentile(samples, 0.5), percentile(samples, 0.99), samples.first!, samples.last!))

await client.close()
await server.close()
clientLoops.syncShutdown()
serverLoops.syncShutdown()
standIn.shutdown()
