/// The client's one-shot watchers by path and kind, as the server holds them for the session
/// (spec: zookeeper-protocol.md §5): what a notification fires, and what SetWatches re-arms.
struct WatchTable {
    enum Kind { case data, exist, child }

    /// getData, and exists on a node that exists: fired by data changes and deletion.
    private var data: [String: [ZooKeeperWatcher]] = [:]
    /// exists on a missing node: fired by its creation.
    private var exist: [String: [ZooKeeperWatcher]] = [:]
    private var child: [String: [ZooKeeperWatcher]] = [:]

    var isEmpty: Bool { data.isEmpty && exist.isEmpty && child.isEmpty }

    /// Records `watcher` once the read that asked for it has its answer: the server set the watch
    /// on success, and for exists also on NONODE.
    mutating func add(_ kind: Kind, path: String, watcher: @escaping ZooKeeperWatcher, error: ZooKeeperError?) {
        switch (kind, error) {
        case (.data, nil), (.exist, nil): data[path, default: []].append(watcher)
        case (.exist, .noNode?): exist[path, default: []].append(watcher)
        case (.child, nil): child[path, default: []].append(watcher)
        default: break
        }
    }

    /// Removes and returns the watchers `event` fires.
    mutating func take(for event: ZooKeeperWatchEvent) -> [ZooKeeperWatcher] {
        let path = event.path
        switch event.type {
        case .nodeCreated, .nodeDataChanged:
            return (data.removeValue(forKey: path) ?? []) + (exist.removeValue(forKey: path) ?? [])
        case .nodeDeleted:
            return (data.removeValue(forKey: path) ?? []) + (exist.removeValue(forKey: path) ?? [])
                + (child.removeValue(forKey: path) ?? [])
        case .nodeChildrenChanged:
            return child.removeValue(forKey: path) ?? []
        default:
            return []
        }
    }

    /// Empties the table, for a session that ended: every watcher with its path.
    mutating func takeAll() -> [(path: String, watcher: ZooKeeperWatcher)] {
        var all: [(path: String, watcher: ZooKeeperWatcher)] = []
        for table in [data, exist, child] {
            for (path, watchers) in table { for watcher in watchers { all.append((path, watcher)) } }
        }
        self = WatchTable()
        return all
    }

    /// SetWatches packets (xid −8) re-arming every path after `zxid`, each at most 128 KB like the
    /// Java client's.
    func setWatchesPackets(relativeZxid zxid: Int64) -> [[UInt8]] {
        let limit = 128 * 1024
        var lists = [data.keys.sorted()[...], exist.keys.sorted()[...], child.keys.sorted()[...]]
        var packets: [[UInt8]] = []
        while lists.contains(where: { !$0.isEmpty }) {
            var batch: [[String]] = [[], [], []]
            var size = 0
            for k in 0..<3 {
                while let path = lists[k].first, size + path.utf8.count + 4 <= limit || size == 0 {
                    batch[k].append(path)
                    size += path.utf8.count + 4
                    lists[k] = lists[k].dropFirst()
                }
            }
            var w = JuteWriter(capacity: size + 40)
            w.int(Xid.setWatches)
            w.int(OpCode.setWatches)
            w.long(zxid)
            w.strings(batch[0])
            w.strings(batch[1])
            w.strings(batch[2])
            packets.append(w.framed)
        }
        return packets
    }
}
