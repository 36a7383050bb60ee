import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanRegistry

@Suite("RegistryAddress and RegistryFactory")
struct RegistryAddressTests {
    typealias Host = RegistryAddress.Host

    @Test func directListsEveryServer() throws {
        let address = try RegistryAddress(parsing: "direct://127.0.0.1:8001,127.0.0.1:8002, [::1]:8003")
        #expect(address.scheme == "direct")
        #expect(
            address.hosts == [
                Host(host: "127.0.0.1", port: 8001), Host(host: "127.0.0.1", port: 8002), Host(host: "::1", port: 8003),
            ])
    }

    @Test func directAcceptsJavasAddressParameter() throws {
        let address = try RegistryAddress(parsing: "direct://?address=10.0.0.1:1,10.0.0.2:2")
        #expect(address.hosts == [Host(host: "10.0.0.1", port: 1), Host(host: "10.0.0.2", port: 2)])
    }

    @Test func localHasNoHosts() throws {
        let address = try RegistryAddress(parsing: "LOCAL://")
        #expect(address.scheme == "local" && address.hosts.isEmpty)
    }

    @Test func zookeeperEnsembleWithDefaultPortAndParameters() throws {
        let address = try RegistryAddress(parsing: "zookeeper://10.0.0.1:2182,10.0.0.2?registrySessionTimeout=30000")
        #expect(address.hosts == [Host(host: "10.0.0.1", port: 2182), Host(host: "10.0.0.2", port: 2181)])
        #expect(address.parameters == ["registrySessionTimeout": "30000"])
        #expect(address.url.parameters["address"] == "10.0.0.1:2182,10.0.0.2:2181")
        #expect(try RegistryAddress(parsing: address.description) == address)
    }

    @Test func consulTakesOneAgent() throws {
        #expect(try RegistryAddress(parsing: "consul://127.0.0.1:8500").hosts == [Host(host: "127.0.0.1", port: 8500)])
        #expect(try RegistryAddress(parsing: "consul://agent").hosts == [Host(host: "agent", port: 8500)])
    }

    @Test(arguments: [
        "127.0.0.1:8001", "direct://", "direct://host", "direct://host:0", "direct://host:70000",
        "direct://host:+80", "direct://a:1,,b:2", "local://host:1", "consul://a:1,b:2", "zookeeper://::1:2181",
        "zookeeper://[::1:2181", "://x:1",
    ])
    func unusableAddressesAreRejectedWithAReason(text: String) {
        #expect(throws: RegistryError.self) { try RegistryAddress(parsing: text) }
        do {
            _ = try RegistryAddress(parsing: text)
        } catch {
            guard case .invalidConfiguration(let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(!reason.isEmpty)
        }
    }

    @Test func factoryMakesDirectAndLocalAndTakesNewSchemes() async throws {
        let loop = UVEventLoop(name: "factory-test")
        defer { loop.syncShutdown() }
        let factory = RegistryFactory()
        let context = RegistryContext(loop: loop)
        let direct = try factory.makeRegistry(parsing: "direct://127.0.0.1:9001", context: context)
        #expect(direct is DirectRegistry)
        let local = try factory.makeRegistry(parsing: "local://", context: context)
        let sameLocal = try factory.makeRegistry(parsing: "local://", context: context)
        #expect(local === sameLocal)
        #expect(throws: RegistryError.self) {
            try factory.makeRegistry(parsing: "zookeeper://127.0.0.1", context: context)
        }

        factory.register(scheme: "ZooKeeper") { address, context in
            LocalRegistry(loop: context.loop)
        }
        #expect(factory.schemes == ["direct", "local", "zookeeper"])
        #expect(try factory.makeRegistry(parsing: "zookeeper://127.0.0.1", context: context) is LocalRegistry)
        await local.close()
        #expect(try factory.makeRegistry(parsing: "local://", context: context) !== local)
    }
}
