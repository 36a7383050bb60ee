import Synchronization

/// The locked state of an in-process registry, which refuses every call once closed.
protocol ClosableRegistryState: Sendable {
    var isClosed: Bool { get }
}

extension Mutex where Value: ClosableRegistryState {
    /// Runs `body` on the state unless the registry is closed, which throws `.closed`.
    func withOpenState<T>(_ body: (inout Value) -> T) throws(RegistryError) -> T {
        let result: T? = withLock { state in state.isClosed ? nil : body(&state) }
        guard let result else { throw .closed }
        return result
    }
}
