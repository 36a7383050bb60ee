import Logging
import MetricsTestKit
import Motan
import MotanRegistry
import MotanTestSupport
import MotanTransport
import Testing

@Suite("Cluster", .serialized)
struct ClusterTests {
    @Test func noProviderFailsFastWithATypedErrorThatNamesTheSwitch() async throws {
        let rig = try ClusterRig(servers: 1)
        let cluster = try await rig.makeCluster()
        // Registered but never switched on: the registry lists nothing.
        try await rig.registry.register(rig.servers[0].url)
        #expect(await eventually { await cluster.status().updates >= 1 })
        await #expect(throws: ClusterError.noProvider(service: TestService.path, group: TestService.group)) {
            try await cluster.call(method: "echo", arguments: ["hi"])
        }
        let message = ClusterError.noProvider(service: TestService.path, group: TestService.group).description
        #expect(message.contains("no provider for test.EchoService in group g"))
        #expect(message.contains("heartbeat switch"))
        #expect(rig.servers[0].calls.value == 0)
        await rig.shutdown()
    }

    @Test func switchDrivesDiscoveryThroughTheAnnouncer() async throws {
        let rig = try ClusterRig(servers: 1)
        let switcher = Switcher()
        let announcer = ServiceAnnouncer(switcher: switcher, registries: [rig.registry])
        let cluster = try await rig.makeCluster()
        try await announcer.register(rig.servers[0].url)
        #expect(await eventually { await cluster.status().updates >= 1 })
        await #expect(throws: ClusterError.self) { try await cluster.call(method: "echo", arguments: ["hi"]) }

        switcher.setOnline(true)
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        #expect(try await cluster.call(method: "echo", arguments: ["on"]).text == "on")
        await announcer.stop()
        await rig.shutdown()
    }

    @Test func callsFailOverAroundAClosedServerAndItReturnsThroughHeartbeats() async throws {
        let rig = try ClusterRig(servers: 3)
        try await rig.publishAll()
        // Echo is idempotent, so even calls that may have reached the dying server are retried.
        let cluster = try await rig.makeCluster(
            haStrategy: .failover(retries: 2, retryPossiblyDelivered: true), failureThreshold: 4)
        #expect(await rig.waitForEndpoints(cluster, count: 3))
        for index in 0..<9 {
            #expect(try await cluster.call(method: "echo", arguments: [.string("\(index)")]).text == "\(index)")
        }
        #expect(rig.servers.allSatisfy { $0.calls.value == 3 })

        let dead = rig.servers[1]
        dead.close()
        for index in 0..<30 {
            #expect(try await cluster.call(method: "echo", arguments: [.string("\(index)")]).text == "\(index)")
        }
        #expect(dead.calls.value == 3)
        #expect(await eventually { await cluster.status().endpoints.filter(\.isAvailable).count == 2 })
        #expect(rig.heartbeats.probedEndpointCount == 1)

        try dead.rebind()
        #expect(await eventually { await cluster.status().endpoints.allSatisfy(\.isAvailable) })
        #expect(rig.heartbeats.probedEndpointCount == 0)
        for index in 0..<9 { _ = try await cluster.call(method: "echo", arguments: [.string("\(index)")]) }
        #expect(dead.calls.value > 3)
        await rig.shutdown()
    }

    @Test func aServerRemovedFromTheRegistryIsClosedAndNoLongerProbed() async throws {
        let rig = try ClusterRig(servers: 2)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster(failureThreshold: 2)
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        let gone = rig.servers[1]
        gone.close()
        // Calls fail over; the closed server's endpoint trips and is probed.
        #expect(
            await eventually {
                _ = try? await cluster.call(method: "echo", arguments: ["x"])
                return rig.heartbeats.probedEndpointCount == 1
            })

        try await rig.registry.unregister(gone.url)
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        #expect(await cluster.status().endpoints.map(\.address.port) == [rig.servers[0].port])
        #expect(rig.heartbeats.probedEndpointCount == 0)
        #expect(!rig.heartbeats.isTimerRunning)
        await rig.shutdown()
    }

    @Test(arguments: [LoadBalance.roundRobin, .random, .leastActive])
    func loadBalancersSkipUnavailableEndpoints(loadBalance: LoadBalance) async throws {
        let rig = try ClusterRig(servers: 2)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster(loadBalance: loadBalance, haStrategy: .failfast, failureThreshold: 1)
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        let dead = rig.servers[1]
        dead.close()
        // A failfast call that meets the dead server fails; one connect failure trips its endpoint.
        #expect(
            await eventually {
                _ = try? await cluster.call(method: "echo", arguments: ["x"])
                return await cluster.status().endpoints.contains { !$0.isAvailable }
            })
        let before = rig.servers[0].calls.value
        for index in 0..<20 {
            #expect(try await cluster.call(method: "echo", arguments: [.string("\(index)")]).text == "\(index)")
        }
        #expect(rig.servers[0].calls.value == before + 20)
        await rig.shutdown()
    }

    @Test func leastActivePicksTheIdleEndpoint() async throws {
        let rig = try ClusterRig(servers: 2)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster(loadBalance: .leastActive)
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        let held = Task { try await cluster.call(method: "hold") }
        #expect(await eventually { rig.servers.map { $0.held.value.count }.reduce(0, +) == 1 })
        let busy = rig.servers.first { !$0.held.value.isEmpty }!
        let idle = rig.servers.first { $0.held.value.isEmpty }!
        #expect(await cluster.status().endpoints.map(\.activeCalls).sorted() == [0, 1])
        for index in 0..<6 { _ = try await cluster.call(method: "echo", arguments: [.string("\(index)")]) }
        #expect(idle.calls.value == 6)
        #expect(busy.calls.value == 1)
        busy.releaseHeld()
        #expect(try await held.value.text == "released")
        await rig.shutdown()
    }

    @Test func roundRobinSpreadsCallsEvenly() async throws {
        let rig = try ClusterRig(servers: 3)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster()
        #expect(await rig.waitForEndpoints(cluster, count: 3))
        for index in 0..<30 { _ = try await cluster.call(method: "echo", arguments: [.string("\(index)")]) }
        #expect(rig.servers.map { $0.calls.value } == [10, 10, 10])
        await rig.shutdown()
    }

    @Test func businessErrorsAndTimeoutsAreNotRetriedByDefault() async throws {
        let rig = try ClusterRig(servers: 2)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster(haStrategy: .failover(retries: 2))
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        do {
            _ = try await cluster.call(method: "businessError")
            Issue.record("a business error must be thrown")
        } catch {
            guard case .call(.remote(let info), _, let attempts) = error else { throw error }
            #expect(info.isBusinessError && attempts == 1)
        }
        do {
            _ = try await cluster.call(method: "hold", timeout: .milliseconds(50))
            Issue.record("the held call must time out")
        } catch {
            guard case .call(.timeout, _, let attempts) = error else { throw error }
            #expect(attempts == 1)
        }
        #expect(rig.servers.map { $0.calls.value }.reduce(0, +) == 2)
        await rig.shutdown()
    }

    @Test func anEmptyListKeepsTheEndpointsWithOneWarningAndAMetric() async throws {
        let rig = try ClusterRig(servers: 1)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        let server = rig.servers[0]

        try await rig.registry.unavailable(nil)
        #expect(await eventually { await cluster.status().keepingStaleEndpoints })
        #expect(await cluster.status().endpoints.count == 1)
        #expect(try await cluster.call(method: "echo", arguments: ["still"]).text == "still")
        let warnings = rig.capture.messages(at: .warning)
        #expect(warnings.count == 1, "\(warnings)")
        #expect(warnings.first?.contains("keeping the 1 endpoints") == true)
        let dimensions = [("service", TestService.subscriber.serviceKey)]
        #expect(try rig.metrics.expectGauge("motan_cluster_stale_endpoints", dimensions).lastValue == 1)
        #expect(try rig.metrics.expectCounter("motan_cluster_empty_lists", dimensions).totalValue == 1)

        // A non-empty list ends the episode and replaces the kept endpoints.
        try await rig.registry.available(server.url)
        #expect(await eventually { await !cluster.status().keepingStaleEndpoints })
        #expect(try rig.metrics.expectGauge("motan_cluster_stale_endpoints", dimensions).lastValue == 0)
        #expect(await cluster.status().endpoints.count == 1)

        // Each empty episode is reported once: one more warning, not one per list.
        try await rig.registry.unavailable(nil)
        #expect(await eventually { await cluster.status().emptyUpdates == 2 })
        #expect(rig.capture.messages(at: .warning).count == 2)
        #expect(try rig.metrics.expectCounter("motan_cluster_empty_lists", dimensions).totalValue == 2)
        await rig.shutdown()
    }

    @Test func aNewListReusesEndpointsOfServersStillListed() async throws {
        let rig = try ClusterRig(servers: 2)
        try await rig.publish(rig.servers[0])
        let cluster = try await rig.makeCluster()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        let first = try await rig.loop.submit { cluster.endpoints.map(ObjectIdentifier.init) }
        try await rig.publish(rig.servers[1])
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        let second = try await rig.loop.submit { cluster.endpoints.map(ObjectIdentifier.init) }
        #expect(second.contains(first[0]))
        await rig.shutdown()
    }

    @Test func callsOnTheLoopCompleteOnTheLoop() async throws {
        let rig = try ClusterRig(servers: 1)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        let outcome = Box<(Bool, String?)?>(nil)
        rig.loop.execute {
            cluster.call(method: "echo", arguments: ["loop"]) { result in
                outcome.mutate { $0 = (rig.loop.inEventLoop, try? result.get().text) }
            }
        }
        #expect(await eventually { outcome.value != nil })
        #expect(outcome.value?.0 == true && outcome.value?.1 == "loop")
        await cluster.close()
        await #expect(throws: ClusterError.closed(service: TestService.path)) {
            try await cluster.call(method: "echo", arguments: ["x"])
        }
        await rig.shutdown()
    }

    @Test func concurrentCallsFromManyTasksAllComplete() async throws {
        let rig = try ClusterRig(servers: 3)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster(loadBalance: .leastActive)
        #expect(await rig.waitForEndpoints(cluster, count: 3))
        let answers = try await withThrowingTaskGroup(of: String?.self) { group in
            for index in 0..<300 {
                group.addTask { try await cluster.call(method: "echo", arguments: [.string("\(index)")]).text }
            }
            var answers: Set<String> = []
            for try await answer in group { if let answer { answers.insert(answer) } }
            return answers
        }
        #expect(answers.count == 300)
        #expect(rig.servers.map { $0.calls.value }.reduce(0, +) == 300)
        #expect(await cluster.status().endpoints.allSatisfy { $0.activeCalls == 0 })
        await rig.shutdown()
    }

    @Test func aDirectRegistryFeedsTheClusterLikeAnyOther() async throws {
        let rig = try ClusterRig(servers: 2)
        let direct = try DirectRegistry(
            address: RegistryAddress(
                parsing: "direct://" + rig.servers.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")),
            loop: rig.loop)
        let cluster = Cluster(serviceURL: TestService.subscriber, registry: direct, loop: rig.loop)
        try await cluster.start()
        #expect(await rig.waitForEndpoints(cluster, count: 2))
        for index in 0..<4 { _ = try await cluster.call(method: "echo", arguments: [.string("\(index)")]) }
        #expect(rig.servers.map { $0.calls.value } == [2, 2])
        await cluster.close()
        await direct.close()
        await rig.shutdown()
    }

    @Test func startIsIdempotentAndRefusedAfterClose() async throws {
        let rig = try ClusterRig(servers: 1)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster()
        try await cluster.start()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        try await rig.registry.unavailable(nil)
        #expect(await eventually { await cluster.status().emptyUpdates == 1 })
        // One subscription: one list per registry change.
        #expect(await cluster.status().updates == 2)
        await cluster.close()
        await #expect(throws: RegistryError.closed) { try await cluster.start() }
        #expect(await cluster.status().endpoints.isEmpty)
        await rig.shutdown()
    }

    @Test func aListOfUnusableAddressesCountsAsEmpty() async throws {
        let rig = try ClusterRig(servers: 1)
        try await rig.publishAll()
        let cluster = try await rig.makeCluster()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        try await rig.registry.unavailable(nil)
        let portless = TestService.url(port: 0)
        try await rig.registry.register(portless)
        try await rig.registry.available(portless)
        #expect(await eventually { await cluster.status().updates == 3 })
        let status = await cluster.status()
        #expect(status.keepingStaleEndpoints && status.endpoints.map(\.address.port) == [rig.servers[0].port])
        #expect(try await cluster.call(method: "echo", arguments: ["kept"]).text == "kept")
        await rig.shutdown()
    }

    @Test func serversThatCannotServeAreIgnored() async throws {
        let rig = try ClusterRig(servers: 1)
        let cluster = try await rig.makeCluster()
        // Another protocol, a referer node and another version on the same address: none of
        // them may take calls, so the list counts as empty.
        let port = rig.servers[0].port
        var otherProtocol = TestService.url(port: port)
        otherProtocol.protocol = "motan"
        var referer = TestService.url(port: port + 1)
        referer[parameter: "nodeType"] = "referer"
        var otherVersion = TestService.url(port: port + 2)
        otherVersion[parameter: "version"] = "2.0"
        for url in [otherProtocol, referer, otherVersion] {
            try await rig.registry.register(url)
            try await rig.registry.available(url)
        }
        #expect(await eventually { await cluster.status().updates >= 2 })
        #expect(await cluster.status().endpoints.isEmpty)
        await #expect(throws: ClusterError.noProvider(service: TestService.path, group: TestService.group)) {
            _ = try await cluster.call(method: "echo", arguments: ["x"])
        }
        // The real one is taken.
        try await rig.publishAll()
        #expect(await rig.waitForEndpoints(cluster, count: 1))
        #expect(try await cluster.call(method: "echo", arguments: ["served"]).text == "served")
        await rig.shutdown()
    }
}
