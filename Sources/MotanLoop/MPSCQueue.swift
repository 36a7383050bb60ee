import Synchronization

/// Multi-producer single-consumer queue (Vyukov's intrusive design): producers never block each
/// other or the consumer, so the loop thread drains it without taking a lock.
final class MPSCQueue<Element>: @unchecked Sendable {
    private final class Node {
        let next = Atomic<UnsafeMutableRawPointer?>(nil)
        var value: Element?
        init(_ value: Element?) { self.value = value }
    }

    /// Producers swing this to their new node.
    private let head: Atomic<UnsafeMutableRawPointer>
    /// Only the consumer touches the tail: it always points at the last consumed (stub) node.
    private var tail: UnsafeMutableRawPointer

    init() {
        let stub = Unmanaged.passRetained(Node(nil)).toOpaque()
        head = Atomic(stub)
        tail = stub
    }

    deinit {
        while pop() != nil {}
        Unmanaged<Node>.fromOpaque(tail).release()
    }

    /// Any thread.
    func push(_ value: Element) {
        let node = Unmanaged.passRetained(Node(value)).toOpaque()
        let previous = head.exchange(node, ordering: .acquiringAndReleasing)
        Unmanaged<Node>.fromOpaque(previous).takeUnretainedValue().next.store(
            node, ordering: .releasing)
    }

    /// Consumer thread only. Returns nil when empty, or while a producer is between its two steps;
    /// that producer's wake-up follows, so nothing is lost.
    func pop() -> Element? {
        let tailNode = Unmanaged<Node>.fromOpaque(tail).takeUnretainedValue()
        guard let next = tailNode.next.load(ordering: .acquiring) else { return nil }
        let nextNode = Unmanaged<Node>.fromOpaque(next).takeUnretainedValue()
        let value = nextNode.value
        nextNode.value = nil
        Unmanaged<Node>.fromOpaque(tail).release()
        tail = next
        return value
    }
}
