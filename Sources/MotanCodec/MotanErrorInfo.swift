/// The error carried by an exception response in `M_e`.
public struct MotanErrorInfo: Sendable, Equatable, Error, CustomStringConvertible {
    public var errcode: Int
    public var errmsg: String
    /// 0 framework, 1 service, 2 business; anything else counts as framework.
    public var errtype: Int

    public static let frameworkType = 0
    public static let serviceType = 1
    public static let businessType = 2
    /// Java's "service default" code, used for an `M_e` that is missing or not JSON.
    public static let defaultServiceErrorCode = 10001

    public init(errcode: Int, errmsg: String, errtype: Int) {
        self.errcode = errcode
        self.errmsg = errmsg
        self.errtype = errtype
    }

    public var isBusinessError: Bool { errtype == MotanErrorInfo.businessType }

    public var description: String {
        "motan error \(errcode) (type \(errtype)): \(errmsg)"
    }

    /// `{"errcode":..,"errmsg":"..","errtype":..}` in motan-go's member order.
    public var json: String {
        var bytes: [UInt8] = []
        appendJSON(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes the JSON text without intermediate strings.
    public func appendJSON(into output: inout [UInt8]) {
        output.append(contentsOf: #"{"errcode":"#.utf8)
        appendDecimal(errcode, into: &output)
        output.append(contentsOf: #","errmsg":""#.utf8)
        JSONText.appendEscaped(errmsg, into: &output)
        output.append(contentsOf: #"","errtype":"#.utf8)
        appendDecimal(errtype, into: &output)
        output.append(UInt8(ascii: "}"))
    }

    /// Strict parse: nil unless the text is a JSON object. Members may come in any order;
    /// missing ones default to 0 / "" and unknown ones are skipped.
    public init?(json text: String) {
        guard let members = JSONText.parseFlatObject(text) else { return nil }
        self.init(
            errcode: members.errcode ?? 0, errmsg: members.errmsg ?? "", errtype: members.errtype ?? 0)
    }

    /// What a client makes of an exception response: the parsed `M_e`, or, when it is missing
    /// or not JSON, a service exception carrying the raw text (as Java does).
    public init(lenientJSON text: String?) {
        if let text, let parsed = MotanErrorInfo(json: text) {
            self = parsed
        } else {
            self.init(
                errcode: MotanErrorInfo.defaultServiceErrorCode, errmsg: text ?? "",
                errtype: MotanErrorInfo.serviceType)
        }
    }
}

/// Decimal digits written straight into the buffer: no String on the encoding path.
func appendDecimal(_ value: Int, into output: inout [UInt8]) {
    if value < 0 { output.append(UInt8(ascii: "-")) }
    var magnitude = value.magnitude
    var digits:
        (
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
        ) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    withUnsafeMutableBytes(of: &digits) { scratch in
        repeat {
            scratch[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            count += 1
        } while magnitude > 0
        while count > 0 {
            count -= 1
            output.append(scratch[count])
        }
    }
}
