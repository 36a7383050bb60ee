/// Every ZooKeeper error code (spec: zookeeper-protocol.md §7), plus the client's own outcomes.
///
/// A request ends in exactly one of: its reply, one of these codes from the server,
/// `.connectionLoss` (the connection carrying it dropped; the write may or may not have happened),
/// `.sessionExpired`, or `.closed` (the client was closed).
public enum ZooKeeperError: Error, Hashable, Sendable, CustomStringConvertible {
    case systemError
    case runtimeInconsistency
    case dataInconsistency
    case connectionLoss
    case marshallingError
    case unimplemented
    case operationTimeout
    case badArguments
    case unknownSession
    case newConfigNoQuorum
    case reconfigInProgress
    case apiError
    case noNode
    case noAuth
    case badVersion
    case noChildrenForEphemerals
    case nodeExists
    case notEmpty
    case sessionExpired
    case invalidCallback
    case invalidACL
    case authFailed
    case sessionMoved
    case notReadOnly
    case ephemeralOnLocalSession
    case noWatcher
    case requestTimeout
    case reconfigDisabled
    case sessionClosedRequireSASLAuth
    case quotaExceeded
    case throttledOp
    /// A code this client does not know.
    case unknown(Int32)
    /// The client was closed before the request could finish.
    case closed

    private static let table: [(Int32, ZooKeeperError, String)] = [
        (-1, .systemError, "SYSTEMERROR"),
        (-2, .runtimeInconsistency, "RUNTIMEINCONSISTENCY"),
        (-3, .dataInconsistency, "DATAINCONSISTENCY"),
        (-4, .connectionLoss, "CONNECTIONLOSS"),
        (-5, .marshallingError, "MARSHALLINGERROR"),
        (-6, .unimplemented, "UNIMPLEMENTED"),
        (-7, .operationTimeout, "OPERATIONTIMEOUT"),
        (-8, .badArguments, "BADARGUMENTS"),
        (-12, .unknownSession, "UNKNOWNSESSION"),
        (-13, .newConfigNoQuorum, "NEWCONFIGNOQUORUM"),
        (-14, .reconfigInProgress, "RECONFIGINPROGRESS"),
        (-100, .apiError, "APIERROR"),
        (-101, .noNode, "NONODE"),
        (-102, .noAuth, "NOAUTH"),
        (-103, .badVersion, "BADVERSION"),
        (-108, .noChildrenForEphemerals, "NOCHILDRENFOREPHEMERALS"),
        (-110, .nodeExists, "NODEEXISTS"),
        (-111, .notEmpty, "NOTEMPTY"),
        (-112, .sessionExpired, "SESSIONEXPIRED"),
        (-113, .invalidCallback, "INVALIDCALLBACK"),
        (-114, .invalidACL, "INVALIDACL"),
        (-115, .authFailed, "AUTHFAILED"),
        (-118, .sessionMoved, "SESSIONMOVED"),
        (-119, .notReadOnly, "NOTREADONLY"),
        (-120, .ephemeralOnLocalSession, "EPHEMERALONLOCALSESSION"),
        (-121, .noWatcher, "NOWATCHER"),
        (-122, .requestTimeout, "REQUESTTIMEOUT"),
        (-123, .reconfigDisabled, "RECONFIGDISABLED"),
        (-124, .sessionClosedRequireSASLAuth, "SESSIONCLOSEDREQUIRESASLAUTH"),
        (-125, .quotaExceeded, "QUOTAEXCEEDED"),
        (-127, .throttledOp, "THROTTLEDOP"),
    ]

    /// The error for a non-zero `err` of a reply header.
    public init(code: Int32) {
        self = Self.table.first { $0.0 == code }?.1 ?? .unknown(code)
    }

    /// The wire code; `.closed` has none of its own and reports CONNECTIONLOSS's.
    public var code: Int32 {
        switch self {
        case .unknown(let code): return code
        case .closed: return -4
        default: return Self.table.first { $0.1 == self }!.0
        }
    }

    public var description: String {
        switch self {
        case .unknown(let code): return "ZooKeeper error \(code)"
        case .closed: return "ZooKeeper client closed"
        default: return "\(Self.table.first { $0.1 == self }!.2) (\(code))"
        }
    }
}
