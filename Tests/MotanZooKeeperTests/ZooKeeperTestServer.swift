import Foundation
import MotanLoop
import MotanTestSupport
import Synchronization
import Testing

@testable import MotanZooKeeper

#if canImport(Glibc)
    import Glibc
#endif

/// The package's scripts/ directory, found from this file so tests run from any working directory.
let scriptsDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("scripts").path
}()

struct ScriptFailure: Error, CustomStringConvertible {
    let description: String
}

/// Spawns `/bin/bash arguments` with `environment` added, stdout into `outputFile` (or
/// /dev/null), stdin from /dev/null; returns the PID. posix_spawn rather than Foundation's Process,
/// whose exit monitoring can miss children that leave background processes behind.
func spawnBash(
    _ arguments: [String], environment: [String: String] = [:], outputFile: String? = nil, quiet: Bool = false
) throws -> pid_t {
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    // Only 0-2 go on to the command: a loop socket or a test runner pipe held open by a server
    // would outlive us. (glibc's closefrom action is not visible from Swift.)
    let closeInherited =
        "for fd in /proc/$$/fd/*; do n=${fd##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done 2>/dev/null; "
        + "exec /bin/bash \"$@\""
    let argv = (["/bin/bash", "-c", closeInherited, "bash"] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for p in argv { free(p) }
        for p in envp { free(p) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputFile ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if quiet { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
    // Threads of the concurrency pool block signals, and ignored signals survive exec: give the
    // shell a clean mask and default handlers, or its `wait` for SIGCHLD may never return.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGCHLD, SIGPIPE, SIGINT, SIGTERM, SIGQUIT] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/bin/bash", &actions, &attributes, argv, envp)
    guard rc == 0 else { throw ScriptFailure(description: "posix_spawn failed: \(rc)") }
    return pid
}

/// Runs one of the project's zk-*.sh scripts and returns its stdout (progress goes to our stderr).
@discardableResult
func runScript(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
    var env = environment
    env["ZK_LOG_BINDING"] = ProcessInfo.processInfo.environment["ZK_LOG_BINDING"] ?? "nop"
    let output = NSTemporaryDirectory() + "motan-zk-script-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { unlink(output) }
    let pid = try spawnBash(["\(scriptsDirectory)/\(name)"] + arguments, environment: env, outputFile: output)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines)
    guard status == 0 else {
        throw ScriptFailure(description: "\(name) \(arguments.joined(separator: " ")) failed (status \(status))")
    }
    return text
}

/// True when a ZooKeeper server and java are present (or could be installed by the scripts).
let zooKeeperInstalled: Bool = {
    FileManager.default.isReadableFile(atPath: "/usr/share/java/zookeeper.jar")
}()

/// Stops the servers of this test process even if it dies: a watchdog shell per server polls our
/// PID and kills the server's PID once we are gone.
func startWatchdog(pidFile: String, removing directory: String? = nil) {
    _ = try? spawnBash(
        [
            "-c",
            // A zombie still answers kill -0: look at the state too. The watchdog holds none of our
            // output pipes, so whoever reads them sees EOF when we end.
            "while [ \"$(sed 's/^.*) //' /proc/\(getpid())/stat 2>/dev/null | cut -d' ' -f1)\" != '' ] "
                + "&& [ \"$(sed 's/^.*) //' /proc/\(getpid())/stat 2>/dev/null | cut -d' ' -f1)\" != Z ]; "
                + "do sleep 1; done; p=$(cat \"$0\" 2>/dev/null); "
                + "grep -q QuorumPeerMain /proc/$p/cmdline 2>/dev/null && kill -9 $p; "
                + "[ -n \"$1\" ] && sleep 0.5 && rm -rf \"$1\"; exit 0",
            pidFile, directory ?? "",
        ], quiet: true)
}

/// A standalone ZooKeeper on 127.0.0.1 with a free port and a temporary data directory.
final class ZooKeeperTestServer: Sendable {
    let port: Int
    let directory: String
    let tickMilliseconds: Int
    var connectString: String { "127.0.0.1:\(port)" }

    /// nil (after printing a SKIP line) only when ZooKeeper cannot be installed here.
    static func start(tickMilliseconds: Int = 2000) throws -> ZooKeeperTestServer? {
        let directory = NSTemporaryDirectory() + "motan-zk-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port: String
        do {
            port = try runScript(
                "zk-start.sh", ["auto", directory], environment: ["ZK_TICK_MS": "\(tickMilliseconds)"])
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            if !zooKeeperInstalled {
                print("SKIP: ZooKeeper is not installed and could not be installed (\(error))")
                return nil
            }
            throw error
        }
        startWatchdog(pidFile: directory + "/zk.pid", removing: directory)
        return ZooKeeperTestServer(port: Int(port)!, directory: directory, tickMilliseconds: tickMilliseconds)
    }

    private init(port: Int, directory: String, tickMilliseconds: Int) {
        self.port = port
        self.directory = directory
        self.tickMilliseconds = tickMilliseconds
    }

    var pid: pid_t? {
        (try? String(contentsOfFile: directory + "/zk.pid", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// SIGSTOP (hang: sockets stay open, nothing is answered) or SIGCONT.
    func signal(_ number: Int32) {
        if let pid { Glibc.kill(pid, number) }
    }

    /// kill -9: a crash; the data directory stays for `restart()`.
    func kill() {
        guard let pid else { return }
        Glibc.kill(pid, SIGKILL)
        while Glibc.kill(pid, 0) == 0,
            (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?
                .contains(") Z ") == false
        {
            usleep(10_000)
        }
        try? FileManager.default.removeItem(atPath: directory + "/zk.pid")
    }

    /// Starts again on the same port with the same data.
    func restart() throws {
        try runScript(
            "zk-start.sh", ["\(port)", directory],
            environment: ["ZK_TICK_MS": "\(tickMilliseconds)", "ZK_KEEP_DATA": "1"])
        startWatchdog(pidFile: directory + "/zk.pid")
    }

    func stop() {
        _ = try? runScript("zk-stop.sh", [directory, "0"])
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// One server for the tests of a whole process; it stops when the process ends (watchdog).
actor SharedZooKeeper {
    static let shared = SharedZooKeeper()
    private var server: ZooKeeperTestServer??

    func get() throws -> ZooKeeperTestServer? {
        if let server { return server }
        let started = try ZooKeeperTestServer.start()
        server = .some(started)
        return started
    }
}

/// The shared polling wait with this suite's bounds: sessions and watches take longer than
/// in-process events.
func eventually(
    timeout: Duration = .seconds(10), poll: Duration = .milliseconds(10),
    _ condition: () async -> Bool
) async -> Bool {
    await MotanTestSupport.eventually(timeout: timeout, poll: poll, condition)
}

/// A loop and clients on it, shut down together.
final class TestLoop: Sendable {
    let loop = UVEventLoop(name: "zk-test")

    func client(
        _ connectString: String, timeout: Duration = .seconds(10),
        configure: (inout ZooKeeperClient.Configuration) -> Void = { _ in }
    ) async throws -> ZooKeeperClient {
        var configuration = ZooKeeperClient.Configuration()
        configuration.sessionTimeout = timeout
        configure(&configuration)
        let client = try ZooKeeperClient(connectString: connectString, loop: loop, configuration: configuration)
        try await client.waitUntilConnected()
        return client
    }

    func shutdown() { loop.syncShutdown() }
}

/// A unique path prefix per test, so tests sharing a server never see each other's nodes.
func uniqueRoot(_ name: String) -> String {
    "/t-\(name)-\(UInt32.random(in: 0...UInt32.max))"
}

/// A three-node ensemble on 127.0.0.1 (scripts/zk-ensemble.sh): client ports base+1...base+3.
final class ZooKeeperTestEnsemble: Sendable {
    let base: Int
    let directory: String
    var connectString: String { (1...3).map { "127.0.0.1:\(base + $0)" }.joined(separator: ",") }

    static func start() throws -> ZooKeeperTestEnsemble? {
        guard zooKeeperInstalled || (try? ZooKeeperTestServer.start().map { $0.stop() }) != nil else {
            print("SKIP: ZooKeeper is not installed and could not be installed")
            return nil
        }
        var lastError: Error?
        for _ in 0..<3 {
            let base = Int.random(in: 20000...39000)
            let directory = NSTemporaryDirectory() + "motan-zk-ensemble-\(getpid())-\(base)"
            do {
                try runScript("zk-ensemble.sh", ["start", "\(base)", directory])
                for n in 1...3 {
                    startWatchdog(pidFile: "\(directory)/\(n)/zk.pid", removing: n == 1 ? directory : nil)
                }
                return ZooKeeperTestEnsemble(base: base, directory: directory)
            } catch {
                lastError = error
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
        throw lastError!
    }

    private init(base: Int, directory: String) {
        self.base = base
        self.directory = directory
    }

    func node(port: Int) -> Int { port - base }

    func kill(_ n: Int) throws { try runScript("zk-ensemble.sh", ["stop-node", directory, "\(n)", "KILL"]) }

    func start(_ n: Int) throws {
        try runScript("zk-ensemble.sh", ["start-node", directory, "\(n)"])
        startWatchdog(pidFile: "\(directory)/\(n)/zk.pid")
    }

    func mode(_ n: Int) -> String {
        (try? runScript("zk-ensemble.sh", ["mode", "\(base + n)"])) ?? "down"
    }

    func stop() {
        _ = try? runScript("zk-ensemble.sh", ["stop", directory, "0"])
        try? FileManager.default.removeItem(atPath: directory)
    }
}
