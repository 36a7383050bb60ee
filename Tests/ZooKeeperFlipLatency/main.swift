// Measures how long a switch flip takes to reach a subscriber through ZooKeeper: `available(nil)`
// / `unavailable(nil)` on one registry (its node moves between `unavailableServer` and `server`),
// until a second registry's subscriber, on its own session, hears the new list through its child
// watch. Also prints the process's resident memory before and after, to show the registries'
// steady footprint. Prints numbers; asserts nothing.
//
//   PORT=$(scripts/zk-start.sh auto)
//   swift run -c release ZooKeeperFlipLatency 127.0.0.1:$PORT [flips] [gap-ms]
//   scripts/zk-stop.sh $PORT
import Foundation
import MotanLoop
import MotanRegistry
import MotanTestSupport
import MotanZooKeeper

let arguments = Array(CommandLine.arguments.dropFirst())
guard let connectString = arguments.first else {
    print("usage: ZooKeeperFlipLatency host:port[,host:port…] [flips] [gap-ms]")
    exit(2)
}
let flips = arguments.dropFirst().first.flatMap { Int($0) } ?? 200
let gap = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 20

func residentMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
        let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
    else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}

let serverLoops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "flip-server")
let clientLoops = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "flip-client")
let registryURL = MotanURL(protocol: "zookeeper", host: "", port: 0, path: "", parameters: ["address": connectString])
let server = try ZooKeeperRegistry(url: registryURL, loop: serverLoops.loops[0])
let client = try ZooKeeperRegistry(url: registryURL, loop: clientLoops.loops[0])
let url = MotanURL(
    protocol: "motan2", host: "127.0.0.1", port: 18_100, path: "com.example.Latency",
    parameters: ["group": "latency-\(getpid())", "nodeType": "service"])

let log = NotificationLog()
try await server.register(url)
_ = try await client.subscribe(url) { urls in log.record(count: urls.count) }

let memoryBefore = residentMiB()
let samples = try await measureFlips(flips, gap: .milliseconds(gap), log: log) { on in
    if on { try await server.available(nil) } else { try await server.unavailable(nil) }
}
let memoryAfter = residentMiB()
print("flip → subscriber notification over \(samples.count) flips, \(gap) ms apart: \(latencySummary(samples))")
print(
    String(
        format: "resident memory (two registries, two sessions): %.1f MiB before the flips, %.1f MiB after",
        memoryBefore, memoryAfter))

await client.close()
await server.close()
clientLoops.syncShutdown()
serverLoops.syncShutdown()
