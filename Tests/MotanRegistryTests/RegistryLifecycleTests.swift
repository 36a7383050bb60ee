import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanRegistry

/// A subscriber's view of one service: every list it was told, in order.
final class Subscriber: Sendable {
    let lists = Box<[[MotanURL]]>([])
    let offLoop = Box(0)

    func listener(on loop: UVEventLoop) -> RegistryListener {
        { servers in
            if !loop.inEventLoop { self.offLoop.mutate { $0 += 1 } }
            self.lists.mutate { $0.append(servers) }
        }
    }

    var last: [MotanURL]? { lists.value.last }
}

@Suite("Registry lifecycle")
struct RegistryLifecycleTests {
    static func serverURL(port: Int, path: String = "test.Echo") -> MotanURL {
        MotanURL(host: "127.0.0.1", port: port, path: path, parameters: ["group": "g", "nodeType": "service"])
    }
    static let subscriberURL = MotanURL(
        host: "127.0.0.1", port: 0, path: "test.Echo", parameters: ["group": "g", "nodeType": "referer"])

    @Test func switchDrivesDiscoveryFromRegistrationToShutdown() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let capture = LogCapture()
        let registry = LocalRegistry(loop: loop)
        let switcher = Switcher()
        let announcer = ServiceAnnouncer(
            switcher: switcher, registries: [registry],
            configuration: .init(reminderDelay: nil, logger: capture.logger()))
        let subscriber = Subscriber()
        _ = try await registry.subscribe(Self.subscriberURL, listener: subscriber.listener(on: loop))
        #expect(await eventually { subscriber.lists.value == [[]] })

        // Switch off at registration: registered, but not discoverable as available.
        let first = Self.serverURL(port: 8001)
        try await announcer.register(first)
        try await announcer.register(Self.serverURL(port: 8002))
        #expect(await registry.registrations().map(\.state) == [.unavailable, .unavailable])
        #expect(try await registry.discover(Self.subscriberURL).isEmpty)
        let warnings = capture.messages(at: .warning)
        #expect(warnings.count == 1, "one warning for both registrations: \(warnings)")
        #expect(warnings.first?.contains("feature.configserver.heartbeat is off") == true)
        #expect(warnings.first?.contains("POST /online") == true)
        #expect(warnings.first?.contains("motan switch") == true)
        #expect(announcer.warningCount == 1)

        // On: subscribers see both.
        switcher.setOnline(true)
        await announcer.settle()
        #expect(await eventually { subscriber.last?.map(\.port) == [8001, 8002] })
        #expect(try await registry.discover(Self.subscriberURL).count == 2)

        // Off: they see them leave, with an empty list.
        switcher.setOnline(false, source: .adminEndpoint)
        await announcer.settle()
        #expect(await eventually { subscriber.last == [] })
        #expect(subscriber.offLoop.value == 0)

        // Unregister removes the instance for good.
        try await announcer.unregister(first)
        #expect(await registry.registrations().map(\.url.port) == [8002])
        await announcer.stop()
        await registry.close()
    }

    @Test func registeringAfterTheSwitchIsOnIsAvailableAtOnce() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let capture = LogCapture()
        let registry = LocalRegistry(loop: loop)
        let switcher = Switcher()
        switcher.setOnline(true)
        let announcer = ServiceAnnouncer(
            switcher: switcher, registries: [registry], configuration: .init(logger: capture.logger()))
        try await announcer.register(Self.serverURL(port: 9001))
        // No switch change happened after the registration: only register() can have made it available.
        #expect(await registry.registrations().map(\.state) == [.available])
        #expect(capture.messages(at: .warning).isEmpty)
        await announcer.stop()
    }

    @Test func aReminderFollowsWhenTheSwitchStaysOff() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let capture = LogCapture()
        let registry = LocalRegistry(loop: loop)
        let announcer = ServiceAnnouncer(
            switcher: Switcher(), registries: [registry],
            configuration: .init(reminderDelay: .milliseconds(20), logger: capture.logger()))
        try await announcer.register(Self.serverURL(port: 9002))
        #expect(await eventually { announcer.warningCount == 2 })
        #expect(capture.messages(at: .warning).last?.contains("still unavailable") == true)
        await announcer.stop()
    }

    @Test func noReminderOnceTheSwitchIsOn() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let registry = LocalRegistry(loop: loop)
        let switcher = Switcher()
        let announcer = ServiceAnnouncer(
            switcher: switcher, registries: [registry], configuration: .init(reminderDelay: .milliseconds(20)))
        try await announcer.register(Self.serverURL(port: 9003))
        switcher.setOnline(true)
        await announcer.settle()
        try await Task.sleep(for: .milliseconds(100))
        await announcer.settle()
        #expect(announcer.warningCount == 1)
        await announcer.stop()
    }

    @Test func aFailingRegistryDoesNotKeepTheOthersFromTheRegistration() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let broken = LocalRegistry(loop: loop)
        await broken.close()
        let working = LocalRegistry(loop: loop)
        let switcher = Switcher()
        switcher.setOnline(true)
        let announcer = ServiceAnnouncer(switcher: switcher, registries: [broken, working])
        await #expect(throws: RegistryError.closed) { try await announcer.register(Self.serverURL(port: 9004)) }
        #expect(await working.registrations().map(\.state) == [.available])
        // The switch still reaches the registry that works.
        switcher.setOnline(false)
        await announcer.settle()
        #expect(await working.registrations().map(\.state) == [.unavailable])
        await announcer.stop()
    }

    @Test func localRegistryDeliversLaterOnItsLoopAndRejectsUnknownURLs() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let registry = LocalRegistry(loop: loop)
        let url = Self.serverURL(port: 7001)
        try await registry.register(url)
        try await registry.available(url)
        let subscriber = Subscriber()
        let subscription = try await registry.subscribe(Self.subscriberURL, listener: subscriber.listener(on: loop))
        #expect(await eventually { subscriber.lists.value == [[url]] })
        #expect(subscriber.offLoop.value == 0)

        // Other groups and paths are other services.
        var otherGroup = Self.serverURL(port: 7002)
        otherGroup.group = "h"
        try await registry.register(otherGroup)
        try await registry.available(nil)
        await #expect(throws: RegistryError.notRegistered(Self.serverURL(port: 7003).description)) {
            try await registry.available(Self.serverURL(port: 7003))
        }
        await registry.unsubscribe(subscription)
        try await registry.unregister(url)
        try await Task.sleep(for: .milliseconds(20))
        #expect(subscriber.lists.value == [[url]])
        await registry.close()
        await #expect(throws: RegistryError.closed) { try await registry.register(url) }
    }

    @Test func directRegistryListsCopiesOfTheSubscriberAndIgnoresTheSwitch() async throws {
        let loop = UVEventLoop(name: "registry-test")
        defer { loop.syncShutdown() }
        let registry = try DirectRegistry(
            address: RegistryAddress(parsing: "direct://127.0.0.1:6001,127.0.0.2:6002"), loop: loop)
        let subscriber = Subscriber()
        _ = try await registry.subscribe(Self.subscriberURL, listener: subscriber.listener(on: loop))
        #expect(await eventually { subscriber.lists.value.count == 1 })
        let servers = try #require(subscriber.last)
        #expect(servers.map(\.hostPort) == ["127.0.0.1:6001", "127.0.0.2:6002"])
        #expect(servers.allSatisfy { $0.path == "test.Echo" && $0.group == "g" })
        #expect(subscriber.offLoop.value == 0)

        try await registry.register(Self.serverURL(port: 1234))
        try await registry.available(nil)
        #expect(try await registry.discover(Self.subscriberURL) == servers)
        #expect(await registry.registrations().map(\.state) == [.available])
        try await Task.sleep(for: .milliseconds(20))
        #expect(subscriber.lists.value.count == 1)
    }
}
