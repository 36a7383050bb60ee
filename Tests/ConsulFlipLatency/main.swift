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
import MotanTestSupport

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

let log = NotificationLog()
try await server.register(url)
_ = try await client.subscribe(url) { urls in log.record(count: urls.count) }

let samples = try await measureFlips(flips, gap: .milliseconds(gap), log: log) { on in
    if on { try await server.available(nil) } else { try await server.unavailable(nil) }
}
print("flip → subscriber notification over \(samples.count) flips, \(gap) ms apart: \(latencySummary(samples))")

await client.close()
await server.close()
clientLoops.syncShutdown()
serverLoops.syncShutdown()
standIn.shutdown()
