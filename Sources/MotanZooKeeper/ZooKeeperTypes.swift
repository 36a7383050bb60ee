/// A node's metadata (spec: zookeeper-protocol.md §1), 68 bytes on the wire.
public struct ZooKeeperStat: Sendable, Hashable {
    public var czxid: Int64
    public var mzxid: Int64
    public var ctime: Int64
    public var mtime: Int64
    public var version: Int32
    public var cversion: Int32
    public var aversion: Int32
    /// The owning session of an ephemeral node, 0 for a persistent one.
    public var ephemeralOwner: Int64
    public var dataLength: Int32
    public var numChildren: Int32
    public var pzxid: Int64
}

public struct ZooKeeperPermissions: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let read = Self(rawValue: 1)
    public static let write = Self(rawValue: 2)
    public static let create = Self(rawValue: 4)
    public static let delete = Self(rawValue: 8)
    public static let admin = Self(rawValue: 16)
    public static let all: Self = [.read, .write, .create, .delete, .admin]
}

public struct ZooKeeperACL: Sendable, Hashable {
    public var permissions: ZooKeeperPermissions
    public var scheme: String
    public var id: String
    public init(permissions: ZooKeeperPermissions, scheme: String, id: String) {
        self.permissions = permissions
        self.scheme = scheme
        self.id = id
    }
    /// world:anyone with every permission, what Motan uses.
    public static let openUnsafe: [ZooKeeperACL] = [.init(permissions: .all, scheme: "world", id: "anyone")]
}

public enum ZooKeeperCreateMode: Int32, Sendable {
    case persistent = 0
    case ephemeral = 1
    case persistentSequential = 2
    case ephemeralSequential = 3
    case container = 4
}

public enum ZooKeeperEventType: Int32, Sendable {
    case none = -1
    case nodeCreated = 1
    case nodeDeleted = 2
    case nodeDataChanged = 3
    case nodeChildrenChanged = 4
    case dataWatchRemoved = 5
    case childWatchRemoved = 6
    case persistentWatchRemoved = 7
}

public enum ZooKeeperKeeperState: Int32, Sendable {
    case unknown = -1
    case disconnected = 0
    case noSyncConnected = 1
    case syncConnected = 3
    case authFailed = 4
    case connectedReadOnly = 5
    case saslAuthenticated = 6
    case closed = 7
    case expired = -112
}

/// What a one-shot watcher hears: the change on the server, or (type `.none`) that the session
/// it was set in ended, in which case the watch is gone and must be set again on the new session.
public struct ZooKeeperWatchEvent: Sendable, Hashable {
    public var type: ZooKeeperEventType
    public var state: ZooKeeperKeeperState
    public var path: String
}

/// A one-shot watcher, called once on the client's loop. It must not block.
public typealias ZooKeeperWatcher = @Sendable (ZooKeeperWatchEvent) -> Void

/// The session as the server granted it.
public struct ZooKeeperSession: Sendable, Hashable {
    public var id: Int64
    public var password: [UInt8]
    /// The negotiated timeout.
    public var timeout: Duration
    public init(id: Int64, password: [UInt8], timeout: Duration) {
        self.id = id
        self.password = password
        self.timeout = timeout
    }
}

/// The session's life as the client sees it.
public enum ZooKeeperSessionEvent: Sendable, Hashable {
    /// Connected to `server`. `isNew` is true for a new session (the first one, or the one after
    /// an expiry): ephemeral nodes and watches of an earlier session are gone.
    case connected(session: ZooKeeperSession, server: String, isNew: Bool)
    /// The connection dropped; the client is reconnecting and the session may still be valid.
    case disconnected
    /// The server declared the session dead; a new one is being made.
    case expired(sessionID: Int64)
    /// The client was closed (closeSession sent when possible). Final.
    case closed
}
