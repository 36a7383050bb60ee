/// The little JSON the codec needs: escaping `errmsg`, and reading a flat object whose member
/// order differs between peers (motan-go `errcode, errmsg, errtype`, Java `errcode, errtype,
/// errmsg`).
enum JSONText {
    static func appendEscaped(_ text: String, into output: inout [UInt8]) {
        appendEscaped(bytes: text.utf8, into: &output)
    }

    static func appendEscaped(bytes: some Sequence<UInt8>, into output: inout [UInt8]) {
        let backslash: UInt8 = 0x5C
        for byte in bytes {
            switch byte {
            case 0x22, 0x5C:
                output.append(backslash)
                output.append(byte)
            case 0x0A:
                output.append(backslash)
                output.append(UInt8(ascii: "n"))
            case 0x0D:
                output.append(backslash)
                output.append(UInt8(ascii: "r"))
            case 0x09:
                output.append(backslash)
                output.append(UInt8(ascii: "t"))
            case 0..<0x20:
                // The meta block cannot carry control characters, LF least of all.
                output.append(backslash)
                output.append(UInt8(ascii: "u"))
                output.append(UInt8(ascii: "0"))
                output.append(UInt8(ascii: "0"))
                output.append(hexDigit(byte >> 4))
                output.append(hexDigit(byte & 0x0F))
            default:
                output.append(byte)
            }
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    struct ErrorMembers {
        var errcode: Int?
        var errmsg: String?
        var errtype: Int?
    }

    static func parseFlatObject(_ text: String) -> ErrorMembers? {
        var parser = Parser(bytes: Array(text.utf8))
        return parser.parseErrorObject()
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        mutating func parseErrorObject() -> ErrorMembers? {
            var members = ErrorMembers()
            skipWhitespace()
            guard consume(UInt8(ascii: "{")) else { return nil }
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return finish(members) }
            while true {
                skipWhitespace()
                guard let name = parseString() else { return nil }
                skipWhitespace()
                guard consume(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                switch name {
                case "errcode":
                    guard let number = parseInteger() else { return nil }
                    members.errcode = number
                case "errtype":
                    guard let number = parseInteger() else { return nil }
                    members.errtype = number
                case "errmsg":
                    if let string = parseString() {
                        members.errmsg = string
                    } else if skipLiteral("null") {
                        members.errmsg = ""
                    } else {
                        return nil
                    }
                default:
                    guard skipValue(depth: 0) else { return nil }
                }
                skipWhitespace()
                if consume(UInt8(ascii: ",")) { continue }
                guard consume(UInt8(ascii: "}")) else { return nil }
                return finish(members)
            }
        }

        private mutating func finish(_ members: ErrorMembers) -> ErrorMembers? {
            skipWhitespace()
            return position == bytes.count ? members : nil
        }

        private mutating func skipWhitespace() {
            while position < bytes.count,
                bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x0D
                    || bytes[position] == 0x09
            {
                position += 1
            }
        }

        private mutating func consume(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        private mutating func skipLiteral(_ literal: String) -> Bool {
            let literalBytes = Array(literal.utf8)
            guard bytes.count - position >= literalBytes.count,
                Array(bytes[position..<(position + literalBytes.count)]) == literalBytes
            else { return false }
            position += literalBytes.count
            return true
        }

        /// Integers; a fraction or exponent is accepted and truncated, since some JSON writers
        /// print every number as a double.
        private mutating func parseInteger() -> Int? {
            let start = position
            guard let number = scanNumber() else { return nil }
            if let exact = Int(number) { return exact }
            guard let double = Double(number), double.isFinite,
                double > Double(Int.min), double < Double(Int.max)
            else {
                position = start
                return nil
            }
            return Int(double)
        }

        private mutating func scanNumber() -> String? {
            let start = position
            if consume(UInt8(ascii: "-")) {}
            var sawDigit = false
            while position < bytes.count {
                let byte = bytes[position]
                if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                    sawDigit = true
                } else if byte != UInt8(ascii: ".") && byte != UInt8(ascii: "e")
                    && byte != UInt8(ascii: "E")
                    && byte != UInt8(ascii: "+") && byte != UInt8(ascii: "-")
                {
                    break
                }
                position += 1
            }
            guard sawDigit else {
                position = start
                return nil
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        private mutating func parseString() -> String? {
            guard consume(UInt8(ascii: "\"")) else { return nil }
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flushRaw(_ scalars: inout String.UnicodeScalarView, _ raw: inout [UInt8]) {
                if raw.isEmpty { return }
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll(keepingCapacity: true)
            }
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flushRaw(&scalars, &raw)
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { return nil }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): raw.append(0x22)
                    case UInt8(ascii: "\\"): raw.append(0x5C)
                    case UInt8(ascii: "/"): raw.append(0x2F)
                    case UInt8(ascii: "b"): raw.append(0x08)
                    case UInt8(ascii: "f"): raw.append(0x0C)
                    case UInt8(ascii: "n"): raw.append(0x0A)
                    case UInt8(ascii: "r"): raw.append(0x0D)
                    case UInt8(ascii: "t"): raw.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let unit = parseHex4() else { return nil }
                        var scalarValue = UInt32(unit)
                        if (0xD800..<0xDC00).contains(unit) {
                            // A surrogate pair spells one scalar; a lone half becomes U+FFFD.
                            let save = position
                            if consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")),
                                let low = parseHex4(), (0xDC00..<0xE000).contains(low)
                            {
                                scalarValue = 0x10000 + (UInt32(unit - 0xD800) << 10) + UInt32(low - 0xDC00)
                            } else {
                                position = save
                                scalarValue = 0xFFFD
                            }
                        }
                        flushRaw(&scalars, &raw)
                        scalars.append(Unicode.Scalar(scalarValue) ?? "\u{FFFD}")
                    default:
                        return nil
                    }
                default:
                    raw.append(byte)
                }
            }
            return nil
        }

        private mutating func parseHex4() -> UInt16? {
            guard bytes.count - position >= 4 else { return nil }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt16(digit)
                position += 1
            }
            return value
        }

        /// Skips any JSON value of a member we do not use; depth-limited like everything else
        /// that reads peer input.
        private mutating func skipValue(depth: Int) -> Bool {
            guard depth < 32, position < bytes.count else { return false }
            switch bytes[position] {
            case UInt8(ascii: "\""):
                return parseString() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = bytes[position] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                let isObject = close == UInt8(ascii: "}")
                position += 1
                skipWhitespace()
                if consume(close) { return true }
                while true {
                    skipWhitespace()
                    if isObject {
                        guard parseString() != nil else { return false }
                        skipWhitespace()
                        guard consume(UInt8(ascii: ":")) else { return false }
                        skipWhitespace()
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    skipWhitespace()
                    if consume(UInt8(ascii: ",")) { continue }
                    return consume(close)
                }
            case UInt8(ascii: "t"): return skipLiteral("true")
            case UInt8(ascii: "f"): return skipLiteral("false")
            case UInt8(ascii: "n"): return skipLiteral("null")
            default: return scanNumber() != nil
            }
        }
    }
}
