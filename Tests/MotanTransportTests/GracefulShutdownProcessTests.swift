import Foundation
import MotanTestSupport
import MotanTransport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Graceful shutdown of a real motan serve under load")
struct GracefulShutdownProcessTests {
    private static let demo = "com.weibo.motan.demo.service.MotanDemoService"

    private enum Outcome: Sendable {
        case answered, shuttingDown
        case otherError(String)
    }

    private struct Call: Sendable {
        var startedBeforeSignal: Bool
        var outcome: Outcome
    }

    private final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .acquiring) }
        func set() { value.store(true, ordering: .releasing) }
    }

    private final class CallLog: Sendable {
        private let calls = Mutex<[Call]>([])
        func append(_ call: Call) { calls.withLock { $0.append(call) } }
        var all: [Call] { calls.withLock { $0 } }
    }

    @Test("SIGTERM under load: calls started before it are answered, later ones fail clearly, exit 0")
    func sigtermUnderLoad() async throws {
        let server = try ServeProcess(
            loops: 2,
            arguments: [
                "--registry", "local://", "--switch", "on", "--propagation-wait", "100", "--grace-period", "5000",
            ])
        defer { server.terminate() }
        let clients = UVEventLoopGroup(numberOfLoops: 2, namePrefix: "shutdown-load")
        let endpoints = clients.loops.map {
            ClientEndpoint(
                address: server.address, loop: $0,
                configuration: .init(connections: 2, requestTimeout: .seconds(8), failureThreshold: 0))
        }
        let signalled = Flag()
        let calls = CallLog()
        // 16 callers, each with one call in flight at a time; every call takes 400 ms on the server, longer than the propagation wait, so calls are in flight when the drain starts.
        await withTaskGroup(of: Void.self) { tasks in
            for caller in 0..<16 {
                tasks.addTask {
                    let endpoint = endpoints[caller % endpoints.count]
                    let stopAt = ContinuousClock.now + .seconds(3)
                    while ContinuousClock.now < stopAt {
                        let before = !signalled.isSet
                        let outcome: Outcome
                        do throws(TransportError) {
                            _ = try await endpoint.call(service: Self.demo, method: "sleep", arguments: [.int64(400)])
                            outcome = .answered
                        } catch .remote(let info) where info.errcode == ServerErrorCode.shuttingDown {
                            outcome = .shuttingDown
                        } catch {
                            outcome = .otherError(error.description)
                        }
                        calls.append(Call(startedBeforeSignal: before, outcome: outcome))
                        if case .otherError = outcome { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                }
            }
            tasks.addTask {
                try? await Task.sleep(for: .milliseconds(500))
                signalled.set()
                server.signal(SIGTERM)
            }
        }
        let all = calls.all
        let before = all.filter(\.startedBeforeSignal)
        let lostBefore = before.filter {
            if case .otherError = $0.outcome { return true } else { return false }
        }
        #expect(before.count >= 16, "the load ran before the signal")
        #expect(
            lostBefore.isEmpty, "calls started before SIGTERM that ended without an answer: \(lostBefore.prefix(3))")
        // After the propagation wait the server answers new requests 'shutting down' and then
        // goes away; whatever came after the signal failed with a typed error, none hung.
        #expect(await eventually(timeout: .seconds(10)) { !server.process.isRunning })
        #expect(server.process.terminationReason == .exit)
        #expect(server.process.terminationStatus == 0, "\(server.output)")
        #expect(server.output.contains("stopped: every request answered"))
        for endpoint in endpoints { await endpoint.close() }
        await clients.shutdown()
    }
}
