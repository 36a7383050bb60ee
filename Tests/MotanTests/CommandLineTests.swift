import Foundation
import Testing

/// The `motan` executable built next to this test bundle.
func motanBinary() throws -> String {
    let executable =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("motan").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "motan next to \(executable)"])
}

/// Runs `motan` with `arguments` to completion (killed after `limit`), returning status and stdout.
func runMotan(_ arguments: [String], limit: Duration = .seconds(60)) async throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try motanBinary())
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let reader = Task { output.fileHandleForReading.readDataToEndOfFile() }
    let watchdog = Task {
        try await Task.sleep(for: limit)
        if process.isRunning { process.terminate() }
    }
    let data = await reader.value
    process.waitUntilExit()
    watchdog.cancel()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("motan demo")
struct DemoCommandTests {
    @Test("the narrative runs to completion: preview, switch on, fault drill, graceful shutdown")
    func demoRuns() async throws {
        let (status, output) = try await runMotan(["demo", "--calls", "200", "--probe-milliseconds", "100"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("in the registry as: unavailable"))
        #expect(output.contains("hello(\"anyone?\") → error: no provider"))
        #expect(output.contains("hello(\"preview\") → \"hello preview\""))
        #expect(output.contains("hello(\"swift-motan\") → \"hello swift-motan\""))
        #expect(output.contains("unavailable (no connection available"))
        #expect(output.contains("available (heartbeat answered"))
        #expect(output.contains("hello(\"again\") → \"hello again\""))
        #expect(output.contains("20 of 20 calls in flight were answered"))
    }
}
