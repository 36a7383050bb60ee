import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A `motan` CLI child process for tests that drive the real command line: output captured to a
/// file, lines awaited with a bound, signals, exit status. Always `terminate()` it.
public final class MotanChild: @unchecked Sendable {
    public let process = Process()
    private let outputPath: String

    public enum Failure: Error, CustomStringConvertible {
        case binaryNotFound(String)
        case noLine(prefix: String, output: String)

        public var description: String {
            switch self {
            case .binaryNotFound(let from): "motan binary not found next to the test bundle (searched from \(from))"
            case .noLine(let prefix, let output): "no line starting '\(prefix)' in motan's output:\n\(output)"
            }
        }
    }

    /// Starts `motan arguments…`; stdout and stderr go to one temporary file.
    public init(_ arguments: [String]) throws {
        outputPath = NSTemporaryDirectory() + "motan-child-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try Self.binary())
        process.arguments = arguments
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { terminate() }

    /// Everything the child printed so far.
    public var output: String {
        (FileManager.default.contents(atPath: outputPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The first output line starting with `prefix`, waiting up to `timeout` for it.
    public func line(startingWith prefix: String, timeout: Duration = .seconds(15)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw Failure.noLine(prefix: prefix, output: output)
    }

    /// The port at the end of the line starting with `prefix` (e.g. "listening on 127.0.0.1:1234").
    public func port(afterLineStartingWith prefix: String) async throws -> Int {
        let line = try await line(startingWith: prefix)
        guard let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]) else {
            throw Failure.noLine(prefix: prefix, output: output)
        }
        return port
    }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits (bounded) for the child to exit; its status, or nil if it is still running.
    public func exitStatus(within timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// SIGKILL if still running, reap, remove the output file; safe to call more than once.
    public func terminate() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: outputPath)
    }

    /// Runs `motan arguments…` to completion (killed after `limit`): exit status and output.
    public static func run(_ arguments: [String], limit: Duration = .seconds(60)) async throws -> (Int32, String) {
        let child = try MotanChild(arguments)
        let status = await child.exitStatus(within: limit)
        let output = child.output
        child.terminate()
        return (status ?? -1, output)
    }

    /// The `motan` executable built next to this test bundle.
    public static func binary() throws -> String {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("motan").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw Failure.binaryNotFound(executable)
    }
}
