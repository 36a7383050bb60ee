import MotanCodec

/// Runs on the connection's loop with the arguments already decoded; must not block. Answers
/// through the responder, inside the call or later through `responder.detach()`.
public typealias OnLoopHandler = @Sendable (borrowing ServerRequest, consuming Responder) -> Void
/// Runs on the connection's loop with the body undecoded (pass-through, forwarding); must not
/// block. Zero-copy: the body is lent for the call only.
public typealias RawOnLoopHandler = @Sendable (borrowing RawServerRequest, consuming Responder) -> Void
/// Runs in Swift concurrency, off the loop, for work that blocks or awaits. A thrown
/// `MotanErrorInfo` goes back as is; any other error becomes errcode 500, errtype 2 (business).
public typealias AsyncHandler = @Sendable (ServiceRequest) async throws -> SimpleValue

/// The services a server offers: `M_p` and `M_m` lead to a handler. Built before the server
/// starts and immutable afterwards, so loops read it without locks.
public struct ServiceRegistry: Sendable {
    enum Handler: Sendable {
        case onLoop(OnLoopHandler)
        case raw(RawOnLoopHandler)
        case async(AsyncHandler)
    }

    struct Method: Sendable {
        var name: [UInt8]
        var handler: Handler
    }

    struct Service: Sendable {
        var name: [UInt8]
        var methods: [Method]
    }

    private(set) var services: [Service] = []

    /// The services registered so far, in registration order: what a server exports.
    public var serviceNames: [String] { services.map { String(decoding: $0.name, as: UTF8.self) } }

    public init() {}

    /// Registers a handler that runs on the loop (lowest latency) with decoded arguments.
    /// Requests whose arguments do not decode are answered 500 "deserialize arguments fail."
    /// without reaching it.
    public mutating func handle(
        service: String, method: String, _ handler: @escaping OnLoopHandler
    ) {
        add(service: service, method: method, .onLoop(handler))
    }

    /// Registers a handler that runs on the loop and gets the body undecoded, as on the wire.
    public mutating func handleRaw(
        service: String, method: String, _ handler: @escaping RawOnLoopHandler
    ) {
        add(service: service, method: method, .raw(handler))
    }

    /// Registers a handler that runs in a task (for blocking or awaiting work).
    public mutating func handleAsync(
        service: String, method: String, _ handler: @escaping AsyncHandler
    ) {
        add(service: service, method: method, .async(handler))
    }

    private mutating func add(service: String, method: String, _ handler: Handler) {
        let serviceName = Array(service.utf8)
        let methodEntry = Method(name: Array(method.utf8), handler: handler)
        if let index = services.firstIndex(where: { $0.name == serviceName }) {
            services[index].methods.removeAll { $0.name == methodEntry.name }
            services[index].methods.append(methodEntry)
        } else {
            services.append(Service(name: serviceName, methods: [methodEntry]))
        }
    }

    // Lookups compare wire bytes: no String is made for a request that routes.

    func service(named name: UnsafeRawBufferPointer) -> Int? {
        services.firstIndex { $0.name.withUnsafeBytes { $0.bytesEqual(name) } }
    }

    func handler(service index: Int, method name: UnsafeRawBufferPointer) -> Handler? {
        services[index].methods.first { $0.name.withUnsafeBytes { $0.bytesEqual(name) } }?.handler
    }
}
