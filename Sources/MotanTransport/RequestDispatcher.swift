import MotanCodec

/// Routes a request frame to its handler and turns routing failures into the error responses
/// Motan peers expect. Request-level problems answer with an error and keep the connection.
struct RequestDispatcher: FrameHandler {
    let registry: ServiceRegistry
    let maxInFlight: Int
    let maxContentLength: Int
    /// Async requests with plain bodies up to this size are decoded on the loop.
    let inlineDecodeLimit: Int
    /// `maxInFlight` in decimal, for the "rejected" answer.
    private let maxInFlightText: [UInt8]

    init(registry: ServiceRegistry, maxInFlight: Int, maxContentLength: Int, inlineDecodeLimit: Int) {
        self.registry = registry
        self.maxInFlight = maxInFlight
        self.maxContentLength = maxContentLength
        self.inlineDecodeLimit = inlineDecodeLimit
        maxInFlightText = Array(String(maxInFlight).utf8)
    }

    func handle(_ frame: FrameView, on connection: ServerConnection) -> FrameDisposition {
        if frame.isResponse {
            // A server never waits for responses; a stray one says nothing about the stream.
            connection.server.logger.debug("dropping a response frame sent to the server")
            return .proceed
        }
        connection.countRequest()
        let isOneway = frame.isOneway
        let startedAt = connection.now
        guard connection.server.isAccepting else {
            // Draining: what is in flight finishes, nothing new starts, and the client learns at
            // once that it may send this request elsewhere.
            connection.server.counters.rejected.add(1, ordering: .relaxed)
            reject(
                frame, isOneway, connection,
                MotanErrorInfo(
                    errcode: ServerErrorCode.shuttingDown,
                    errmsg: "server is shutting down: request not run, send it to another server",
                    errtype: MotanErrorInfo.serviceType))
            return .proceed
        }
        guard connection.inFlight < maxInFlight else {
            connection.server.counters.rejected.add(1, ordering: .relaxed)
            guard !isOneway else { return .proceed }
            maxInFlightText.withUnsafeBytes {
                connection.writeErrorResponse(
                    requestID: frame.requestID, errcode: ServerErrorCode.rejected, prefix: "request rejected: ",
                    middle: $0, suffix: " requests already in flight on this connection", processTime: 0)
            }
            return .proceed
        }
        // Routing errors are written from the wire bytes: no String is made for them either.
        guard let service = frame.serviceBytes, let serviceIndex = registry.service(named: service) else {
            guard !isOneway else { return .proceed }
            connection.writeErrorResponse(
                requestID: frame.requestID, errcode: ServerErrorCode.providerNotExist,
                prefix: "provider not exist serviceKey=", middle: frame.serviceBytes ?? Self.empty, suffix: "",
                processTime: 0)
            return .proceed
        }
        guard let method = frame.methodBytes, let handler = registry.handler(service: serviceIndex, method: method)
        else {
            guard !isOneway else { return .proceed }
            connection.writeErrorResponse(
                requestID: frame.requestID, errcode: ServerErrorCode.internalError, prefix: "method ",
                middle: frame.methodBytes ?? Self.empty, suffix: " is not found in provider.", processTime: 0)
            return .proceed
        }
        if !frame.body.isEmpty && frame.header.serialization != SerializationID.simple {
            guard !isOneway else { return .proceed }
            // As motan-go: no M_pt, because no handler produced this answer.
            connection.writeErrorResponse(
                requestID: frame.requestID, errcode: ServerErrorCode.internalError,
                prefix: "deserialize fail. err:message serialize not found method:", middle: method, suffix: "",
                processTime: nil)
            return .proceed
        }

        switch handler {
        case .onLoop(let body):
            var arguments = connection.takeArgumentStorage()
            do {
                try ArgumentDecoding.decode(
                    frame.body, isGzipped: frame.isGzipped, maxContentLength: maxContentLength, into: &arguments)
            } catch {
                connection.recycleArgumentStorage(arguments)
                reject(frame, isOneway, connection, ArgumentDecoding.failure(error))
                return .proceed
            }
            let ticket = connection.beginCall(requestID: frame.requestID, startedAt: startedAt, isOneway: isOneway)
            let request = ServerRequest(frame: frame, arguments: consume arguments)
            body(request, Responder(connection: connection, ticket: ticket))
            connection.endCall()
            connection.recycleArgumentStorage(request.takeArguments())
        case .raw(let body):
            let ticket = connection.beginCall(requestID: frame.requestID, startedAt: startedAt, isOneway: isOneway)
            body(
                RawServerRequest(frame: frame, maxContentLength: maxContentLength),
                Responder(connection: connection, ticket: ticket))
            connection.endCall()
        case .async(let body):
            dispatchAsync(frame, body, startedAt, isOneway, connection)
        }
        return .proceed
    }

    /// Small plain bodies are decoded here, where the bytes are; large or gzipped ones are
    /// copied as they are and decoded in the task, so that no request can make the loop
    /// inflate and decode megabytes while other connections wait.
    // Out of line: the task it starts would otherwise put type lookups and a dynamic stack
    // allocation in front of every request the dispatcher sees.
    @inline(never)
    private func dispatchAsync(
        _ frame: FrameView, _ body: @escaping AsyncHandler, _ startedAt: UInt64, _ isOneway: Bool,
        _ connection: ServerConnection
    ) {
        let decodeNow = !frame.header.isGzipped && frame.body.count <= inlineDecodeLimit
        var decoded: [SimpleValue]?
        if decodeNow {
            do {
                decoded = try ArgumentDecoding.decode(
                    frame.body, isGzipped: false, maxContentLength: maxContentLength)
            } catch {
                reject(frame, isOneway, connection, ArgumentDecoding.failure(error))
                return
            }
        }
        let owned = frame.makeFrame()
        let isGzipped = frame.header.isGzipped
        let limit = maxContentLength
        if !decodeNow { connection.server.counters.deferredDecodes.add(1, ordering: .relaxed) }
        let ticket = connection.beginCall(requestID: frame.requestID, startedAt: startedAt, isOneway: isOneway)
        let responder = Responder(connection: connection, ticket: ticket).detach()
        connection.endCall()
        let preDecoded = decoded
        Task {
            let arguments: [SimpleValue]
            if let preDecoded {
                arguments = preDecoded
            } else {
                let outcome = owned.body.withUnsafeBytes { bytes in
                    Result { () throws(MotanCodecError) in
                        try ArgumentDecoding.decode(bytes, isGzipped: isGzipped, maxContentLength: limit)
                    }
                }
                switch outcome {
                case .success(let values): arguments = values
                case .failure(let error):
                    responder.fail(ArgumentDecoding.failure(error))
                    return
                }
            }
            let request = ServiceRequest(
                requestID: owned.requestID,
                service: owned.meta[MetaKey.service] ?? "", method: owned.meta[MetaKey.method] ?? "",
                group: owned.meta[MetaKey.group], meta: owned.meta, arguments: arguments)
            let result: Result<SimpleValue, MotanErrorInfo>
            do {
                result = .success(try await body(request))
            } catch let info as MotanErrorInfo {
                result = .failure(info)
            } catch {
                result = .failure(ServerErrorCode.handlerFailure(error))
            }
            responder.complete(with: result)
        }
    }

    private static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    private func reject(
        _ frame: FrameView, _ isOneway: Bool, _ connection: ServerConnection, _ error: MotanErrorInfo,
        processTime: Int? = 0
    ) {
        guard !isOneway else { return }
        connection.writeErrorResponse(requestID: frame.requestID, error: error, processTime: processTime)
    }
}

/// The error codes this server puts in `M_e` (spec: motan2-wire.md, section 10).
public enum ServerErrorCode {
    /// Unknown service: `provider not exist serviceKey=...`.
    public static let providerNotExist = 404
    /// Unknown method, undecodable arguments, unsupported serialization, handler failure.
    public static let internalError = 500
    /// Too many requests in flight on the connection (Java's "rejected" code).
    public static let rejected = 10002
    /// The server is draining for shutdown and did not run the request.
    public static let shuttingDown = 503

    /// A handler threw: the provider method failed, which Motan calls a business exception.
    static func handlerFailure(_ error: any Error) -> MotanErrorInfo {
        MotanErrorInfo(
            errcode: internalError, errmsg: String(describing: error),
            errtype: MotanErrorInfo.businessType)
    }
}
