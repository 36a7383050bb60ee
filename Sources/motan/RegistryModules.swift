import MotanConsul
import MotanRegistry
import MotanZooKeeper

/// Teaches the process-wide registry factory the schemes of the registry modules this build has,
/// beside the built-in `direct://` and `local://`.
func installRegistryModules() {
    RegistryFactory.shared.register(scheme: "zookeeper") { address, context throws(RegistryError) in
        try ZooKeeperRegistry(url: address.url, loop: context.loop, logger: context.logger)
    }
    RegistryFactory.shared.register(scheme: "consul") { address, context throws(RegistryError) in
        try ConsulRegistry(url: address.url, loop: context.loop, logger: context.logger)
    }
}
