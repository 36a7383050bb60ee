import MotanCodec

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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

    private(set) var services: [Service] = [] {
        didSet { routes = RouteTable(services) }
    }
    /// The same names, laid out for the lookups every request makes.
    private var routes = RouteTable([])

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
        routes.service(named: name)
    }

    func handler(service index: Int, method name: UnsafeRawBufferPointer) -> Handler? {
        routes.method(service: index, named: name).map { routes.handlers[$0] }
    }
}

/// Every service and method name in one block of memory, with flat tables of where each lies:
/// a lookup compares lengths, then bytes, and touches no reference count. Immutable.
final class RouteTable: @unchecked Sendable {
    private struct Entry {
        var offset: Int
        var count: Int
        /// For a service, the range of its methods in `methods`.
        var first = 0
        var end = 0
    }

    private let names: UnsafeMutableRawPointer
    private let services: UnsafeMutableBufferPointer<Entry>
    private let methods: UnsafeMutableBufferPointer<Entry>
    /// Aligned with `methods`.
    let handlers: [ServiceRegistry.Handler]

    init(_ registered: [ServiceRegistry.Service]) {
        let total = registered.reduce(0) { $0 + $1.name.count + $1.methods.reduce(0) { $0 + $1.name.count } }
        let names = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 8)
        let services = UnsafeMutableBufferPointer<Entry>.allocate(capacity: registered.count)
        let methods = UnsafeMutableBufferPointer<Entry>.allocate(
            capacity: registered.reduce(0) { $0 + $1.methods.count })
        var handlers: [ServiceRegistry.Handler] = []
        var offset = 0
        func store(_ name: [UInt8]) -> Entry {
            name.withUnsafeBytes {
                (names + offset).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(names), byteCount: $0.count)
            }
            defer { offset += name.count }
            return Entry(offset: offset, count: name.count)
        }
        for (index, service) in registered.enumerated() {
            var entry = store(service.name)
            entry.first = handlers.count
            for method in service.methods {
                methods.initializeElement(at: handlers.count, to: store(method.name))
                handlers.append(method.handler)
            }
            entry.end = handlers.count
            services.initializeElement(at: index, to: entry)
        }
        self.names = names
        self.services = services
        self.methods = methods
        self.handlers = handlers
    }

    deinit {
        names.deallocate()
        services.deallocate()
        methods.deallocate()
    }

    func service(named name: UnsafeRawBufferPointer) -> Int? {
        for index in services.indices where matches(services[index], name) { return index }
        return nil
    }

    func method(service index: Int, named name: UnsafeRawBufferPointer) -> Int? {
        let service = services[index]
        for method in service.first..<service.end where matches(methods[method], name) { return method }
        return nil
    }

    @inline(__always)
    private func matches(_ entry: Entry, _ name: UnsafeRawBufferPointer) -> Bool {
        guard entry.count == name.count else { return false }
        guard let bytes = name.baseAddress, entry.count > 0 else { return true }
        return memcmp(names + entry.offset, bytes, entry.count) == 0
    }
}
