import Foundation
import MotanLoop
import MotanTestSupport

#if canImport(Glibc)
    import Glibc
#endif

enum ServeProcessError: Error, CustomStringConvertible {
    case didNotStart(String)

    var description: String {
        switch self {
        case .didNotStart(let output): return "motan serve did not report its port: \(output)"
        }
    }
}

/// A `motan serve` child process, for tests that kill, stop and restart a real server.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    private let outputPath: String

    /// Starts `motan serve --port port` and waits (bounded) for its "listening on" line.
    init(port: Int = 0, loops: Int = 1, arguments extra: [String] = []) throws {
        let binary = try MotanChild.binary()
        outputPath = NSTemporaryDirectory() + "motan-serve-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--port", String(port), "--loops", String(loops)] + extra
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        var found: Int?
        while Date() < deadline, process.isRunning {
            if let text = readText(outputPath),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                let colon = line.lastIndex(of: ":"), let parsed = Int(line[line.index(after: colon)...])
            {
                found = parsed
                break
            }
            usleep(10_000)
        }
        guard let found else {
            let text = readText(outputPath) ?? ""
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            throw ServeProcessError.didNotStart(text)
        }
        self.port = found
    }

    /// Starts a server on `port`, retrying briefly while the old one's socket is still going away.
    static func restart(on port: Int) throws -> ServeProcess {
        var lastError: Error?
        for _ in 0..<20 {
            do {
                return try ServeProcess(port: port)
            } catch {
                lastError = error
                usleep(100_000)
            }
        }
        throw lastError!
    }

    var address: TCPAddress { TCPAddress(host: "127.0.0.1", port: port) }
    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// SIGSTOP, then waits (bounded) until the kernel reports the process stopped, so a test
    /// never races the signal's delivery.
    func stop() {
        kill(pid, SIGSTOP)
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline, state != "T" { usleep(1_000) }
    }

    /// The state letter from /proc/<pid>/stat (R, S, T, ...).
    var state: String? {
        guard let stat = readText("/proc/\(pid)/stat"),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").first.map(String.init)
    }

    /// Everything the child has printed so far.
    var output: String { readText(outputPath) ?? "" }

    /// SIGKILL and reap; safe to call more than once.
    func terminate() {
        if process.isRunning {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}

/// A whole file as text, read with plain POSIX calls: Foundation's file reading leaks a buffer per
/// call on this platform, which the sanitizer runs would report.
func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { return count == 0 ? String(decoding: bytes, as: UTF8.self) : nil }
        bytes.append(contentsOf: chunk[0..<count])
    }
}

/// A `motan serve` child with one byte peer connected to it, for tests of the demo service.
final class DemoServePeer: @unchecked Sendable {
    let server: ServeProcess
    let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "demo-peer")
    let peer: BytePeer

    init() async throws {
        server = try ServeProcess()
        do {
            peer = try await BytePeer.connect(to: server.address, on: group.loops[0])
        } catch {
            group.syncShutdown()
            server.terminate()
            throw error
        }
    }

    func close() {
        peer.close()
        group.syncShutdown()
        server.terminate()
    }
}
