import MotanHarness
import Testing

@Suite("motan bench arguments")
struct BenchConfigurationTests {
    private func options(_ edit: (inout BenchOptions) -> Void) -> BenchOptions {
        var options = BenchOptions()
        options.targets = ["127.0.0.1:8002"]
        edit(&options)
        return options
    }

    private func error(_ edit: (inout BenchOptions) -> Void) -> BenchError? {
        do {
            _ = try BenchConfiguration.parse(options(edit))
            return nil
        } catch {
            return error
        }
    }

    @Test func defaultsMakeAClosedLoopRun() throws {
        let configuration = try BenchConfiguration.parse(options { _ in })
        #expect(configuration.targets.map(\.description) == ["127.0.0.1:8002"])
        #expect(configuration.shape == .closedLoop(depth: 1))
        #expect(configuration.connections == 16)
        #expect(configuration.timeoutMilliseconds == 1000)
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:99999", "127.0.0.1:0", "example.com:80", ":80", "[::1]80", ""])
    func badTargetIsRejectedWithItsText(_ target: String) {
        let failure = error { $0.targets = [target] }
        guard case .invalidTarget(let text, _)? = failure else {
            Issue.record("expected invalidTarget for '\(target)', got \(String(describing: failure))")
            return
        }
        #expect(text == target)
        #expect(failure!.description.contains("host:port"))
    }

    @Test func ipv6TargetIsAccepted() throws {
        let configuration = try BenchConfiguration.parse(options { $0.targets = ["[::1]:8002"] })
        #expect(configuration.targets[0].host == "::1")
    }

    @Test(arguments: ["0", "0s", "0ms"])
    func zeroDurationIsRejected(_ duration: String) {
        let failure = error { $0.duration = duration }
        guard case .invalidValue(let option, _, let reason)? = failure else {
            Issue.record("expected invalidValue, got \(String(describing: failure))")
            return
        }
        #expect(option == "--duration")
        #expect(reason.contains("greater than zero"))
    }

    @Test(arguments: ["abc", "-1", "5h", "inf"])
    func malformedDurationIsRejected(_ duration: String) {
        guard case .invalidValue(let option, let value, _)? = error({ $0.duration = duration }) else {
            Issue.record("expected invalidValue for '\(duration)'")
            return
        }
        #expect(option == "--duration" && value == duration)
    }

    @Test func durationUnits() throws {
        #expect(try BenchConfiguration.parseSeconds("250ms", option: "x") == 0.25)
        #expect(try BenchConfiguration.parseSeconds("1.5s", option: "x") == 1.5)
        #expect(try BenchConfiguration.parseSeconds("2m", option: "x") == 120)
        #expect(try BenchConfiguration.parseSeconds("3", option: "x") == 3)
    }

    @Test func rateAndDepthTogetherAreRejected() {
        let failure = error {
            $0.rate = "1000"
            $0.depth = 4
        }
        guard case .conflictingOptions(let a, let b, _)? = failure else {
            Issue.record("expected conflictingOptions, got \(String(describing: failure))")
            return
        }
        #expect(a == "--rate")
        #expect(b.hasPrefix("--depth"))
    }

    @Test(arguments: ["0", "-5", "fast", "nan"])
    func badRateIsRejected(_ rate: String) {
        guard case .invalidValue(let option, _, _)? = error({ $0.rate = rate }) else {
            Issue.record("expected invalidValue for rate '\(rate)'")
            return
        }
        #expect(option == "--rate")
    }

    @Test func rateMakesAConstantRateRun() throws {
        let configuration = try BenchConfiguration.parse(options { $0.rate = "2500" })
        #expect(configuration.shape == .constantRate(requestsPerSecond: 2500))
    }

    @Test func zeroConnectionsDepthAndLoopsAreRejected() {
        #expect(error { $0.connections = 0 } != nil)
        #expect(error { $0.depth = 0 } != nil)
        #expect(error { $0.loops = 0 } != nil)
        #expect(error { $0.payload = -1 } != nil)
        #expect(error { $0.timeout = "0" } != nil)
        #expect(error { $0.method = "" } != nil)
    }

    @Test func noTargetWithoutEmbeddedIsRejected() {
        #expect(error { $0.targets = [] } == .noTarget)
    }

    @Test func targetsAndEmbeddedTogetherAreRejected() {
        #expect(error { $0.embedded = true } == .targetsWithEmbedded)
    }

    @Test func directRegistryIsATargetList() throws {
        let configuration = try BenchConfiguration.parse(
            options {
                $0.targets = []
                $0.registry = "direct://127.0.0.1:8002,127.0.0.1:8003"
            })
        #expect(configuration.targets.map(\.description) == ["127.0.0.1:8002", "127.0.0.1:8003"])
    }

    @Test(arguments: ["zookeeper://127.0.0.1:2181", "consul://127.0.0.1:8500"])
    func otherRegistriesAreNotAvailableInThisBuild(_ url: String) {
        let failure = error {
            $0.targets = []
            $0.registry = url
        }
        #expect(failure == .registryNotAvailable(url))
        #expect(failure?.description.contains("not available in this build") == true)
    }

    @Test func directRegistryWithBadTargetIsRejected() {
        guard
            case .invalidTarget? = error({
                $0.targets = []
                $0.registry = "direct://nohost"
            })
        else {
            Issue.record("expected invalidTarget")
            return
        }
    }

    @Test func faultDrillsNeedTheEmbeddedServer() {
        #expect(error { $0.killAfter = "1" } == .faultNeedsEmbedded("--kill-after"))
        #expect(error { $0.pauseAfter = "1" } == .faultNeedsEmbedded("--pause-after"))
        #expect(
            error {
                $0.targets = []
                $0.embedded = true
                $0.killAfter = "1"
                $0.pauseAfter = "1"
            } != nil)
        #expect(error { $0.healAfter = "1" } != nil)
    }

    @Test func faultDrillOnEmbeddedServer() throws {
        let configuration = try BenchConfiguration.parse(
            options {
                $0.targets = []
                $0.embedded = true
                $0.pauseAfter = "500ms"
                $0.healAfter = "1"
            })
        #expect(configuration.fault == .pause(afterSeconds: 0.5, healAfterSeconds: 1))
    }
}
