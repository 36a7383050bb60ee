import MotanCodec
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanTransport

#if canImport(Glibc)
    import Glibc
#endif

private let demo = "com.weibo.motan.demo.service.MotanDemoService"

/// Against a real `motan serve` child process that the tests kill, stop and restart.
@Suite("Server process faults", .serialized)
struct ProcessTests {
    @Test("kill -9: unavailable after the weighted threshold; a restart on the same port revives it")
    func killAndRestart() async throws {
        let server = try ServeProcess()
        defer { server.terminate() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) { $0.reconnectDelay = .seconds(10) }
        defer { endpoint.close() }
        #expect(try await endpoint.call(service: demo, method: "echo", arguments: ["up"]) == "up")
        #expect(!client.manager.isTimerRunning)

        server.terminate()
        var failures = 0
        while endpoint.isAvailable && failures < 30 {
            do {
                _ = try await endpoint.call(service: demo, method: "echo", arguments: ["x"])
            } catch {
                failures += 1
            }
        }
        #expect(!endpoint.isAvailable)
        // Weights: a drop or refused connect costs 1–2, "no connection" 3; ten is reached quickly.
        #expect(failures <= 6)
        #expect(client.manager.isTimerRunning)
        let unavailable = client.stateChanges.first
        #expect(unavailable?.isUnavailable == true)

        let restarted = try ServeProcess.restart(on: server.port)
        defer { restarted.terminate() }
        let listening = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(3)) { endpoint.isAvailable })
        // The next probe is at most one (backed-off, jittered) probe delay away: 200 ms cap + 20 %.
        // The slack on top is for a loaded machine, not for a missed probe (a missed one costs a
        // whole further delay).
        let probe = client.manager.configuration
        let bound = probe.maxBackoff * (1 + probe.jitter) + .milliseconds(150)
        #expect(ContinuousClock.now - listening < bound, "revived after \(ContinuousClock.now - listening)")
        #expect(try await endpoint.call(service: demo, method: "echo", arguments: ["back"]) == "back")
        #expect(await eventually { !client.manager.isTimerRunning })
    }

    @Test("SIGSTOP: calls time out and the endpoint goes unavailable; SIGCONT revives it")
    func stopAndContinue() async throws {
        let server = try ServeProcess()
        defer { server.terminate() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) { $0.requestTimeout = .milliseconds(100) }
        defer { endpoint.close() }
        #expect(
            try await endpoint.call(service: demo, method: "echo", arguments: ["up"], timeout: .seconds(2)) == "up")

        server.stop()
        #expect(server.state == "T")
        let timeouts = Box(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask {
                    do {
                        _ = try await endpoint.call(service: demo, method: "echo", arguments: ["x"])
                    } catch TransportError.timeout {
                        timeouts.mutate { $0 += 1 }
                    } catch {}
                }
            }
        }
        #expect(timeouts.value == 10)
        #expect(!endpoint.isAvailable)
        #expect(client.manager.isTimerRunning)
        // Heartbeats go unanswered while the process is stopped.
        #expect(
            await eventually {
                client.events.value.contains { if case .heartbeatFailed = $0 { true } else { false } }
            })
        #expect(!endpoint.isAvailable)

        server.signal(SIGCONT)
        #expect(await eventually(timeout: .seconds(3)) { endpoint.isAvailable })
        #expect(try await endpoint.call(service: demo, method: "echo", arguments: ["again"]) == "again")
    }

    @Test("under load with the server killed mid-run every call ends once, none past its timeout")
    func loadWithKill() async throws {
        let server = try ServeProcess()
        defer { server.terminate() }
        let client = TestClient()
        defer { client.shutdown() }
        let timeout = Duration.seconds(1)
        let endpoint = client.endpoint(server.address) { $0.requestTimeout = timeout }
        defer { endpoint.close() }

        struct Tally: Sendable {
            var sent = 0
            var succeeded = 0
            var failed = 0
            var slowest = Duration.zero
        }
        let tally = Box(Tally())
        let tasks = 4
        let callsPerTask = 10_000
        let killAfter = 4_000
        let killed = Box(false)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    let clock = ContinuousClock()
                    for call in 0..<callsPerTask {
                        tally.mutate { $0.sent += 1 }
                        let start = clock.now
                        do {
                            let value = try await endpoint.call(
                                service: demo, method: "echo", arguments: [.int64(Int64(task * callsPerTask + call))])
                            #expect(value == .int64(Int64(task * callsPerTask + call)))
                            tally.mutate { $0.succeeded += 1 }
                        } catch {
                            tally.mutate { $0.failed += 1 }
                        }
                        let elapsed = clock.now - start
                        let succeeded = tally.mutate { tally in
                            tally.slowest = max(tally.slowest, elapsed)
                            return tally.succeeded
                        }
                        let killNow =
                            succeeded >= killAfter
                            && killed.mutate { done in
                                defer { done = true }
                                return !done
                            }
                        if killNow {
                            server.signal(SIGKILL)
                        }
                    }
                }
            }
        }
        let result = tally.value
        #expect(killed.value)
        #expect(result.sent == tasks * callsPerTask)
        #expect(result.sent == result.succeeded + result.failed)
        #expect(result.succeeded >= killAfter)
        #expect(result.failed > 0)
        // The timeout bounds every call, measured from the call's own start; the slack covers
        // the wheel's tick and the hops between the task and the loop on a loaded machine.
        #expect(result.slowest < timeout + .milliseconds(400), "slowest call took \(result.slowest)")
        #expect(!endpoint.isAvailable)
    }

    @Test("idle keepalive marks a SIGSTOPped server unavailable without any call, SIGCONT revives it")
    func keepaliveFindsStoppedServer() async throws {
        let server = try ServeProcess()
        defer { server.terminate() }
        let client = TestClient()
        defer { client.shutdown() }
        let endpoint = client.endpoint(server.address) {
            $0.keepaliveIdleInterval = .milliseconds(100)
            $0.heartbeatTimeout = .milliseconds(300)
        }
        defer { endpoint.close() }
        #expect(try await endpoint.call(service: demo, method: "echo", arguments: ["up"]) == "up")
        // Healthy and idle: keepalives are answered.
        #expect(await eventually { client.events.value.contains(.heartbeatAnswered(keepalive: true)) })
        #expect(endpoint.isAvailable)

        server.stop()
        #expect(server.state == "T")
        let clock = ContinuousClock()
        let stopped = clock.now
        #expect(await eventually(timeout: .seconds(5)) { !endpoint.isAvailable })
        // Within idle interval (100 ms) + heartbeat timeout (300 ms) + one 50 ms manager period;
        // the rest is slack for a loaded machine, far below the wait above.
        let detected = try #require(client.firstUnavailableAt) - stopped
        #expect(detected < .milliseconds(1200), "unavailable after \(detected)")
        #expect(client.stateChanges.first.map { "\($0)" }?.contains("keepalive") == true)

        server.signal(SIGCONT)
        #expect(await eventually(timeout: .seconds(3)) { endpoint.isAvailable })
        #expect(try await endpoint.call(service: demo, method: "echo", arguments: ["again"]) == "again")
    }
}
