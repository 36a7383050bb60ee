import Foundation
import MotanHTTP
import MotanLoop

/// The service registration body (consul-agent-api.md §2.1), members named as Consul spells them.
struct ConsulServiceRegistration: Codable, Sendable, Equatable {
    struct Check: Codable, Sendable, Equatable {
        var TTL: String
    }
    var ID: String
    var Name: String
    var Tags: [String]
    var Address: String
    var Port: Int
    var Check: Check
}

/// One entry of `/v1/health/service/<name>`; only the members Motan reads, the rest ignored.
struct ConsulHealthEntry: Decodable, Sendable {
    struct Service: Decodable, Sendable {
        var ID: String
        var Service: String
        var Tags: [String]?
        var Address: String?
        var Port: Int?
    }
    var Service: Service
}

/// What went wrong talking to the agent.
enum ConsulCallError: Error, Sendable, CustomStringConvertible {
    case transport(LoopHTTPError)
    case status(Int, String)
    case badBody(String)

    var description: String {
        switch self {
        case .transport(let error): "\(error)"
        case .status(let status, let text): "HTTP \(status): \(text.prefix(200))"
        case .badBody(let why): "unreadable answer: \(why)"
        }
    }

    var isNotFound: Bool {
        if case .status(404, _) = self { return true }
        return false
    }
}

/// The agent endpoints the registry uses, as loop-callback calls. Every write is a PUT (Consul ≥ 1.0
/// refuses anything else with 405). Loop thread only.
final class ConsulAgentAPI {
    let client: LoopHTTPClient
    let agent: TCPAddress
    let requestTimeout: Duration

    init(client: LoopHTTPClient, agent: TCPAddress, requestTimeout: Duration) {
        self.client = client
        self.agent = agent
        self.requestTimeout = requestTimeout
    }

    typealias Done = (Result<Void, ConsulCallError>) -> Void

    func register(_ registration: ConsulServiceRegistration, _ done: @escaping Done) {
        let body = (try? JSONEncoder().encode(registration)).map { Array($0) } ?? []
        put("/v1/agent/service/register", body: body, done)
    }

    /// 404 counts as done: the service is gone either way.
    func deregister(serviceID: String, _ done: @escaping Done) {
        put("/v1/agent/service/deregister/\(Self.escape(serviceID))", body: []) { result in
            if case .failure(let error) = result, error.isNotFound { return done(.success(())) }
            done(result)
        }
    }

    func passCheck(serviceID: String, _ done: @escaping Done) {
        put("/v1/agent/check/pass/service:\(Self.escape(serviceID))", body: [], done)
    }

    func failCheck(serviceID: String, _ done: @escaping Done) {
        put("/v1/agent/check/fail/service:\(Self.escape(serviceID))", body: [], done)
    }

    /// Passing instances of `service`; with `index` > 0 a blocking query that returns on a change or after `wait`.
    @discardableResult
    func health(
        service: String, index: UInt64, wait: Duration,
        _ done: @escaping (Result<(entries: [ConsulHealthEntry], index: UInt64), ConsulCallError>) -> Void
    ) -> LoopHTTPRequestHandle {
        var target = "/v1/health/service/\(Self.escape(service))?passing"
        var timeout = requestTimeout
        if index > 0 {
            let seconds = max(1, wait.components.seconds)
            target += "&index=\(index)&wait=\(seconds)s"
            // The agent may add up to wait/16 of jitter before answering.
            timeout = wait + wait / 16 + requestTimeout
        }
        // A blocking query the agent dropped is not repeated as is: the agent may have restarted
        // with a lower index, and the caller resynchronises instead.
        return client.execute(
            LoopHTTPRequest(method: "GET", target: target), to: agent, timeout: timeout,
            retryOnStaleConnection: index == 0
        ) { result in
            switch result {
            case .failure(let error):
                done(.failure(.transport(error)))
            case .success(let response) where response.status != 200:
                done(.failure(.status(response.status, response.bodyText)))
            case .success(let response):
                guard let indexText = response.headers["X-Consul-Index"], let newIndex = UInt64(indexText) else {
                    return done(.failure(.badBody("no X-Consul-Index")))
                }
                do {
                    let entries = try JSONDecoder().decode([ConsulHealthEntry].self, from: Data(response.body))
                    done(.success((entries, newIndex)))
                } catch {
                    done(.failure(.badBody("\(error)")))
                }
            }
        }
    }

    private func put(_ target: String, body: [UInt8], _ done: @escaping Done) {
        var headers: LoopHTTPHeaders = [:]
        if !body.isEmpty { headers.add("Content-Type", "application/json") }
        client.execute(
            LoopHTTPRequest(method: "PUT", target: target, headers: headers, body: body), to: agent,
            timeout: requestTimeout
        ) { result in
            switch result {
            case .failure(let error): done(.failure(.transport(error)))
            case .success(let response) where (200..<300).contains(response.status): done(.success(()))
            case .success(let response): done(.failure(.status(response.status, response.bodyText)))
            }
        }
    }

    /// Service ids contain `:` and `/`-free interface names; colons travel unescaped, as Consul expects.
    static func escape(_ segment: String) -> String { LoopHTTPPercent.encode(segment, keeping: ":") }
}
