/// One value of the simple serialization (id 6). Each case is one wire tag, so a decoded value
/// re-encodes to the bytes it came from; maps are ordered pairs for the same reason.
public enum SimpleValue: Sendable {
    case null
    case string(String)
    /// Tag 2: string keys and values only.
    case stringMap([SimplePair<String, String>])
    case bytes([UInt8])
    /// Tag 4: strings only.
    case stringArray([String])
    case bool(Bool)
    case byte(UInt8)
    case int16(Int16)
    case int32(Int32)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    /// Tag 20: any keys and values.
    case map([SimplePair<SimpleValue, SimpleValue>])
    /// Tag 21: any elements.
    case array([SimpleValue])

    /// The wire tag of this value.
    public var tag: UInt8 {
        switch self {
        case .null: return 0
        case .string: return 1
        case .stringMap: return 2
        case .bytes: return 3
        case .stringArray: return 4
        case .bool: return 5
        case .byte: return 6
        case .int16: return 7
        case .int32: return 8
        case .int64: return 9
        case .float32: return 10
        case .float64: return 11
        case .map: return 20
        case .array: return 21
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// Any integer case widened to Int64 (the receiver decides which width it needs).
    public var integerValue: Int64? {
        switch self {
        case .byte(let value): return Int64(value)
        case .int16(let value): return Int64(value)
        case .int32(let value): return Int64(value)
        case .int64(let value): return value
        default: return nil
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

/// An ordered map entry.
public struct SimplePair<Key, Value> {
    public var key: Key
    public var value: Value

    public init(_ key: Key, _ value: Value) {
        self.key = key
        self.value = value
    }
}

extension SimplePair: Sendable where Key: Sendable, Value: Sendable {}
extension SimplePair: Equatable where Key: Equatable, Value: Equatable {}
extension SimplePair: Hashable where Key: Hashable, Value: Hashable {}

extension SimpleValue: Equatable {
    /// Floats compare by bit pattern: that is what goes on the wire, and it keeps `==` reflexive
    /// for NaN so that round-trip checks hold for every value.
    public static func == (lhs: SimpleValue, rhs: SimpleValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.string(let a), .string(let b)): return a == b
        case (.stringMap(let a), .stringMap(let b)): return a == b
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.stringArray(let a), .stringArray(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.byte(let a), .byte(let b)): return a == b
        case (.int16(let a), .int16(let b)): return a == b
        case (.int32(let a), .int32(let b)): return a == b
        case (.int64(let a), .int64(let b)): return a == b
        case (.float32(let a), .float32(let b)): return a.bitPattern == b.bitPattern
        case (.float64(let a), .float64(let b)): return a.bitPattern == b.bitPattern
        case (.map(let a), .map(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        default: return false
        }
    }
}

extension SimpleValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByNilLiteral, ExpressibleByArrayLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: SimpleValue...) { self = .array(elements) }
}

extension SimpleValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    /// Integer literals are int64 (tag 9), as motan-go and motan-php send every `int`.
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(floatLiteral value: Double) { self = .float64(value) }
}
