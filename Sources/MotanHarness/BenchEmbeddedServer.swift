import Dispatch
import MotanCodec
import MotanLoop
import MotanTransport
import Synchronization

/// A Motan2 echo server in the bench's own process, on a loop group of its own, so a run needs
/// no setup; it can also be broken on purpose for the fault drill. Control methods are called
/// from the runner's task, never from a loop.
public final class BenchEmbeddedServer: Sendable {
    public let address: TCPAddress
    let group: UVEventLoopGroup
    private let services: ServiceRegistry
    private let endpoint: Mutex<ServerEndpoint?>
    private let paused = Mutex<DispatchSemaphore?>(nil)

    /// Echoes `service`/`method` on the loop: the body goes back as it came.
    public init(service: String, method: String, port: Int = 0, loops: Int = 1) throws(BenchError) {
        group = UVEventLoopGroup(numberOfLoops: loops, namePrefix: "bench-server")
        var registry = ServiceRegistry()
        // Raw pass-through: the body goes back as it came (gzip flag included), zero-copy.
        registry.handleRaw(service: service, method: method) { request, responder in
            responder.respond(passingThrough: request)
        }
        services = registry
        do {
            let server = try ServerEndpoint(group: group, services: registry, configuration: .init(port: port))
            address = server.address
            endpoint = Mutex(server)
        } catch {
            group.syncShutdown()
            throw .embeddedServerFailed("\(error)")
        }
    }

    /// Closes the listener and every connection: clients see resets and refused connects.
    public func kill() {
        let server = endpoint.withLock { current in
            defer { current = nil }
            return current
        }
        server?.close()
    }

    /// Binds again on the same port.
    public func restart() throws(BenchError) {
        do {
            let server = try ServerEndpoint(
                group: group, services: services, configuration: .init(host: address.host, port: address.port))
            let old = endpoint.withLock { current in
                defer { current = server }
                return current
            }
            old?.close()
        } catch {
            throw .embeddedServerFailed("re-binding \(address): \(error)")
        }
    }

    /// Freezes the server's loops as a stopped process would be frozen: nothing is read,
    /// answered or accepted, connections stay open, and the kernel queues what clients send.
    /// Deliberately blocks the loop threads: this is the fault being injected.
    public func pause() {
        let gate = DispatchSemaphore(value: 0)
        let started = paused.withLock { current -> Bool in
            guard current == nil else { return false }
            current = gate
            return true
        }
        guard started else { return }
        for loop in group.loops {
            loop.execute { gate.wait() }
        }
    }

    public func resume() {
        guard
            let gate = paused.withLock({ current in
                defer { current = nil }
                return current
            })
        else { return }
        for _ in group.loops { gate.signal() }
    }

    public func shutdown() {
        resume()
        kill()
        group.syncShutdown()
    }
}
