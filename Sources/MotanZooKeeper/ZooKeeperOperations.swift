import MotanLoop

/// The operations: async forms callable from any thread, and `completion:` forms for the loop.
extension ZooKeeperClient {
    /// A path the server would refuse anyway: absolute, no empty or relative components.
    static func validate(_ path: String) throws(ZooKeeperError) {
        guard path.hasPrefix("/") else { throw .badArguments }
        if path == "/" { return }
        guard !path.hasSuffix("/"), !path.contains("//"), !path.utf8.contains(0) else { throw .badArguments }
        for part in path.split(separator: "/") where part == "." || part == ".." {
            throw .badArguments
        }
    }

    // MARK: request records

    static func createBody(_ path: String, _ data: [UInt8], _ mode: ZooKeeperCreateMode, _ acl: [ZooKeeperACL])
        -> [UInt8]
    {
        var w = JuteWriter(capacity: path.utf8.count + data.count + 48)
        w.string(path)
        w.buffer(data)
        w.acls(acl)
        w.int(mode.rawValue)
        return w.bytes
    }

    static func pathBody(_ path: String, watch: Bool) -> [UInt8] {
        var w = JuteWriter(capacity: path.utf8.count + 5)
        w.string(path)
        w.bool(watch)
        return w.bytes
    }

    static func pathVersionBody(_ path: String, _ data: [UInt8]?, _ version: Int32) -> [UInt8] {
        var w = JuteWriter(capacity: path.utf8.count + (data?.count ?? 0) + 12)
        w.string(path)
        if let data { w.buffer(data) }
        w.int(version)
        return w.bytes
    }

    private func checked<T>(
        _ path: String, _ completion: @escaping (Result<T, ZooKeeperError>) -> Void
    ) -> Bool {
        do throws(ZooKeeperError) {
            try Self.validate(path)
            return true
        } catch {
            completion(.failure(error))
            return false
        }
    }

    // MARK: loop-thread forms

    /// Creates `path`; the result is the name the server gave it (differs for sequential nodes).
    public func create(
        _ path: String, data: [UInt8] = [], mode: ZooKeeperCreateMode = .persistent,
        acl: [ZooKeeperACL] = ZooKeeperACL.openUnsafe, completion: @escaping (Result<String, ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        submit(op: OpCode.create, body: Self.createBody(path, data, mode, acl)) { result in
            completion(
                result.flatMap { r in
                    Result { () throws(ZooKeeperError) in
                        var r = r
                        return try r.string() ?? path
                    }
                })
        }
    }

    public func delete(
        _ path: String, version: Int32 = -1, completion: @escaping (Result<Void, ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        submit(op: OpCode.delete, body: Self.pathVersionBody(path, nil, version)) { completion($0.map { _ in () }) }
    }

    /// The node's stat, or nil when it does not exist. A watcher is set either way: it hears
    /// NodeCreated for a missing node, NodeDataChanged or NodeDeleted for an existing one.
    public func exists(
        _ path: String, watcher: ZooKeeperWatcher? = nil,
        completion: @escaping (Result<ZooKeeperStat?, ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        let watch = watcher.map { WatchRegistration(kind: .exist, path: path, watcher: $0) }
        submit(op: OpCode.exists, body: Self.pathBody(path, watch: watcher != nil), watch: watch) { result in
            switch result {
            case .success(var r): completion(Result { () throws(ZooKeeperError) in try r.stat() })
            case .failure(.noNode): completion(.success(nil))
            case .failure(let error): completion(.failure(error))
            }
        }
    }

    public func getData(
        _ path: String, watcher: ZooKeeperWatcher? = nil,
        completion: @escaping (Result<(data: [UInt8], stat: ZooKeeperStat), ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        let watch = watcher.map { WatchRegistration(kind: .data, path: path, watcher: $0) }
        submit(op: OpCode.getData, body: Self.pathBody(path, watch: watcher != nil), watch: watch) { result in
            completion(
                result.flatMap { r in
                    Result { () throws(ZooKeeperError) in
                        var r = r
                        return (data: try r.buffer() ?? [], stat: try r.stat())
                    }
                })
        }
    }

    public func setData(
        _ path: String, data: [UInt8], version: Int32 = -1,
        completion: @escaping (Result<ZooKeeperStat, ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        submit(op: OpCode.setData, body: Self.pathVersionBody(path, data, version)) { result in
            completion(
                result.flatMap { r in
                    Result { () throws(ZooKeeperError) in
                        var r = r
                        return try r.stat()
                    }
                })
        }
    }

    /// getChildren2: the children's names (unordered) and the parent's stat.
    public func getChildren(
        _ path: String, watcher: ZooKeeperWatcher? = nil,
        completion: @escaping (Result<(children: [String], stat: ZooKeeperStat), ZooKeeperError>) -> Void
    ) {
        guard checked(path, completion) else { return }
        let watch = watcher.map { WatchRegistration(kind: .child, path: path, watcher: $0) }
        submit(op: OpCode.getChildren2, body: Self.pathBody(path, watch: watcher != nil), watch: watch) { result in
            completion(
                result.flatMap { r in
                    Result { () throws(ZooKeeperError) in
                        var r = r
                        return (children: try r.strings(), stat: try r.stat())
                    }
                })
        }
    }

    // MARK: async forms

    /// Creates `path`. With `createParents`, missing ancestors are created first as empty
    /// persistent nodes (ancestors that appear meanwhile are fine).
    @discardableResult
    public func create(
        _ path: String, data: [UInt8] = [], mode: ZooKeeperCreateMode = .persistent,
        acl: [ZooKeeperACL] = ZooKeeperACL.openUnsafe, createParents: Bool = false
    ) async throws(ZooKeeperError) -> String {
        try Self.validate(path)
        do {
            var r = try await perform(op: OpCode.create, body: Self.createBody(path, data, mode, acl))
            return try r.string() ?? path
        } catch .noNode where createParents {
            try await ensurePath(parent(of: path), acl: acl)
            var r = try await perform(op: OpCode.create, body: Self.createBody(path, data, mode, acl))
            return try r.string() ?? path
        }
    }

    /// Creates `path` and its missing ancestors as empty persistent nodes; existing ones are fine.
    public func ensurePath(_ path: String, acl: [ZooKeeperACL] = ZooKeeperACL.openUnsafe) async throws(ZooKeeperError) {
        try Self.validate(path)
        if path == "/" { return }
        do {
            _ = try await perform(op: OpCode.create, body: Self.createBody(path, [], .persistent, acl))
        } catch .nodeExists {
            return
        } catch .noNode {
            try await ensurePath(parent(of: path), acl: acl)
            do {
                _ = try await perform(op: OpCode.create, body: Self.createBody(path, [], .persistent, acl))
            } catch .nodeExists {
                return
            }
        }
    }

    private func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    public func delete(_ path: String, version: Int32 = -1) async throws(ZooKeeperError) {
        try Self.validate(path)
        _ = try await perform(op: OpCode.delete, body: Self.pathVersionBody(path, nil, version))
    }

    /// The node's stat, or nil when missing; `watcher` is set either way (see the loop form).
    public func exists(_ path: String, watcher: ZooKeeperWatcher? = nil) async throws(ZooKeeperError) -> ZooKeeperStat?
    {
        try Self.validate(path)
        let watch = watcher.map { WatchRegistration(kind: .exist, path: path, watcher: $0) }
        do {
            var r = try await perform(op: OpCode.exists, body: Self.pathBody(path, watch: watcher != nil), watch: watch)
            return try r.stat()
        } catch .noNode {
            return nil
        }
    }

    public func getData(
        _ path: String, watcher: ZooKeeperWatcher? = nil
    ) async throws(ZooKeeperError) -> (data: [UInt8], stat: ZooKeeperStat) {
        try Self.validate(path)
        let watch = watcher.map { WatchRegistration(kind: .data, path: path, watcher: $0) }
        var r = try await perform(op: OpCode.getData, body: Self.pathBody(path, watch: watcher != nil), watch: watch)
        return (data: try r.buffer() ?? [], stat: try r.stat())
    }

    @discardableResult
    public func setData(_ path: String, data: [UInt8], version: Int32 = -1) async throws(ZooKeeperError)
        -> ZooKeeperStat
    {
        try Self.validate(path)
        var r = try await perform(op: OpCode.setData, body: Self.pathVersionBody(path, data, version))
        return try r.stat()
    }

    public func getChildren(
        _ path: String, watcher: ZooKeeperWatcher? = nil
    ) async throws(ZooKeeperError) -> (children: [String], stat: ZooKeeperStat) {
        try Self.validate(path)
        let watch = watcher.map { WatchRegistration(kind: .child, path: path, watcher: $0) }
        var r = try await perform(
            op: OpCode.getChildren2, body: Self.pathBody(path, watch: watcher != nil), watch: watch)
        return (children: try r.strings(), stat: try r.stat())
    }
}
