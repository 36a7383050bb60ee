/// The standard meta keys. Anything else in a frame's meta is an attachment and is kept as is.
public enum MetaKey {
    /// Service path: the interface name the provider is registered under.
    public static let service = "M_p"
    public static let method = "M_m"
    /// Java parameter type names joined by commas; Java servers use it to pick among overloads.
    public static let methodDescriptor = "M_md"
    public static let group = "M_g"
    public static let version = "M_v"
    /// The caller's application name (not the service).
    public static let source = "M_s"
    public static let module = "M_mdu"
    public static let proxyProtocol = "M_pp"
    /// Per-request timeout in milliseconds (decimal).
    public static let timeout = "M_tmo"
    /// Logical request id (decimal int64) that motan-go prefers over the header id.
    public static let requestID = "M_rid"
    public static let frameworkService = "M_fws"
    public static let auth = "M_a"
    public static let infoSign = "M_is"
    /// Error JSON of an exception response.
    public static let exception = "M_e"
    /// Server processing time in milliseconds (decimal).
    public static let processTime = "M_pt"
}

extension Meta {
    public var service: String? {
        get { self[MetaKey.service] }
        set { self[MetaKey.service] = newValue }
    }
    public var method: String? {
        get { self[MetaKey.method] }
        set { self[MetaKey.method] = newValue }
    }
    public var methodDescriptor: String? {
        get { self[MetaKey.methodDescriptor] }
        set { self[MetaKey.methodDescriptor] = newValue }
    }
    public var group: String? {
        get { self[MetaKey.group] }
        set { self[MetaKey.group] = newValue }
    }
    public var version: String? {
        get { self[MetaKey.version] }
        set { self[MetaKey.version] = newValue }
    }
    public var source: String? {
        get { self[MetaKey.source] }
        set { self[MetaKey.source] = newValue }
    }
    public var module: String? {
        get { self[MetaKey.module] }
        set { self[MetaKey.module] = newValue }
    }
    public var proxyProtocol: String? {
        get { self[MetaKey.proxyProtocol] }
        set { self[MetaKey.proxyProtocol] = newValue }
    }
    public var requestIDString: String? {
        get { self[MetaKey.requestID] }
        set { self[MetaKey.requestID] = newValue }
    }
    public var frameworkService: String? {
        get { self[MetaKey.frameworkService] }
        set { self[MetaKey.frameworkService] = newValue }
    }
    public var auth: String? {
        get { self[MetaKey.auth] }
        set { self[MetaKey.auth] = newValue }
    }
    public var infoSign: String? {
        get { self[MetaKey.infoSign] }
        set { self[MetaKey.infoSign] = newValue }
    }
    /// The raw `M_e` text; `Frame.errorInfo` parses it.
    public var exception: String? {
        get { self[MetaKey.exception] }
        set { self[MetaKey.exception] = newValue }
    }
    public var processTime: String? {
        get { self[MetaKey.processTime] }
        set { self[MetaKey.processTime] = newValue }
    }
    /// `M_pt` as a number; nil when absent or not a decimal integer.
    public var processTimeMillis: Int? {
        get { processTime.flatMap { Int($0) } }
        set { processTime = newValue.map { String($0) } }
    }
    /// `M_tmo` as a number; nil when absent or not a decimal integer.
    public var timeoutMillis: Int? {
        get { self[MetaKey.timeout].flatMap { Int($0) } }
        set { self[MetaKey.timeout] = newValue.map { String($0) } }
    }
}
