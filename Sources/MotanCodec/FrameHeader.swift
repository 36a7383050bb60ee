/// The message-type byte (offset 2). Each bit is tested on its own; unknown bits are carried
/// through so that a decoded frame re-encodes to the same bytes.
public struct MessageFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let response = MessageFlags(rawValue: 0x01)
    /// Set by motan-go agents and on motan-go heartbeats; carries no meaning for this codec.
    public static let proxy = MessageFlags(rawValue: 0x02)
    /// Defined by every peer, honoured by none: servers still reply.
    public static let oneway = MessageFlags(rawValue: 0x04)
    public static let gzip = MessageFlags(rawValue: 0x08)
    public static let heartbeat = MessageFlags(rawValue: 0x10)
}

/// Serialization ids as carried in byte 4 (`id << 3`).
public enum SerializationID {
    public static let hessian2: UInt8 = 0
    /// Java writes this id on heartbeats because it is its header default.
    public static let grpcPB: UInt8 = 1
    public static let simple: UInt8 = 6
}

public struct FrameHeader: Sendable, Equatable {
    public static let magic: UInt16 = 0xF1F1
    /// Byte count of magic, type, version/status, serialization and request id.
    public static let size = 13
    /// Motan2 is version 1 on the wire; version 0 is the old Motan V1 layout.
    public static let motan2Version: UInt8 = 1

    public var flags: MessageFlags
    /// 5 bits on the wire.
    public var version: UInt8
    /// 3 bits on the wire: 0 normal, 1 exception.
    public var status: UInt8
    /// The serialization id, not the shifted wire byte.
    public var serialization: UInt8
    /// Opaque: the id is echoed, never interpreted.
    public var requestID: UInt64

    public init(
        flags: MessageFlags = [],
        version: UInt8 = FrameHeader.motan2Version,
        status: UInt8 = 0,
        serialization: UInt8 = SerializationID.simple,
        requestID: UInt64
    ) {
        self.flags = flags
        self.version = version
        self.status = status
        self.serialization = serialization
        self.requestID = requestID
    }

    /// Bit 0x10 alone decides: Java sends 0x10/0x11, motan-go 0x12/0x13.
    @inlinable public var isHeartbeat: Bool { flags.contains(.heartbeat) }
    @inlinable public var isResponse: Bool { flags.contains(.response) }
    @inlinable public var isGzipped: Bool { flags.contains(.gzip) }
    /// Java treats any non-zero status of a response as an exception; so do we.
    @inlinable public var isException: Bool { status != 0 }

    var versionStatusByte: UInt8 { (version & 0x1F) << 3 | (status & 0x07) }
    var serializationByte: UInt8 { (serialization & 0x1F) << 3 }
}
