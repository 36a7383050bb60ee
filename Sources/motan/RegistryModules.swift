import MotanRegistry

/// Teaches the process-wide registry factory the schemes of the registry modules this build has,
/// beside the built-in `direct://` and `local://`.
func installRegistryModules() {
    _ = RegistryFactory.shared
}
