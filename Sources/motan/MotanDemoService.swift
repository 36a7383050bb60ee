import MotanCodec
import MotanTransport

/// The service `motan serve` offers: an echo for load and latency checks, plus methods that
/// sleep or fail on request for fault drills.
enum MotanDemoService {
    /// The interface name of motan's own demo, so existing demo clients can call it.
    static let name = "com.weibo.motan.demo.service.MotanDemoService"

    static func registry() -> ServiceRegistry {
        var registry = ServiceRegistry()
        // On the loop: the first argument goes back as it came, once the body is known to decode
        // (else 500 "deserialize arguments fail.", as for decoded handlers). Nothing is decoded
        // into values just to be encoded again; a gzipped body is.
        registry.handleRaw(service: name, method: "echo") { request, responder in
            let shape: SimpleBodyShape?
            do throws(MotanCodecError) {
                shape = try request.checkArguments()
            } catch {
                return responder.respond(undecodableArguments: error)
            }
            if let shape {
                guard let first = shape.firstValue else { return responder.respond(.null) }
                return responder.respond(passingThrough: request, value: first)
            }
            let arguments: [SimpleValue]
            do throws(MotanCodecError) {
                arguments = try request.decodeArguments()
            } catch {
                return responder.respond(undecodableArguments: error)
            }
            responder.respond(arguments.first ?? .null)
        }
        // The same answer through the decoded form: what decoding and encoding again cost.
        registry.handle(service: name, method: "echoDecoded") { request, responder in
            responder.respond(request.arguments.first ?? .null)
        }
        // The body goes back byte for byte, never decoded: the server's own cost per request,
        // comparable with any echo server that does not look inside the body.
        registry.handleRaw(service: name, method: "echoRaw") { request, responder in
            responder.respond(passingThrough: request)
        }
        registry.handle(service: name, method: "hello") { request, responder in
            responder.respond(.string("hello \(request.arguments.first?.stringValue ?? "")"))
        }
        // Off the loop: waits the given milliseconds, then answers with them.
        registry.handleAsync(service: name, method: "sleep") { request in
            let milliseconds = request.arguments.first?.integerValue ?? 0
            try await Task.sleep(for: .milliseconds(milliseconds))
            return .int64(milliseconds)
        }
        registry.handleAsync(service: name, method: "fail") { request in
            throw MotanDemoService.Failure(message: request.arguments.first?.stringValue ?? "failure requested")
        }
        return registry
    }
}

extension MotanDemoService {
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
