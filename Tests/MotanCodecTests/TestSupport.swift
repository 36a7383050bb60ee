@testable import MotanCodec

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Bytes from hex text; spaces are ignored so that spec examples can be pasted as written.
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8.filter { $0 != UInt8(ascii: " ") && $0 != 0x0A })
    precondition(digits.count % 2 == 0, "odd hex length")
    func value(_ digit: UInt8) -> UInt8 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: preconditionFailure("not a hex digit: \(digit)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { hex(UInt64($0), width: 2) }.joined()
}

/// Decodes exactly one frame from `bytes`, fed whole.
func decodeOne(_ bytes: [UInt8], maxContentLength: Int = FrameDecoder.defaultMaxContentLength) throws(MotanCodecError)
    -> Frame
{
    var decoder = FrameDecoder(maxContentLength: maxContentLength)
    decoder.feed(bytes)
    guard let frame = try decoder.next() else {
        preconditionFailure("incomplete frame: \(hexString(bytes))")
    }
    precondition(decoder.bufferedByteCount == 0, "bytes left after one frame")
    return frame
}

/// Decodes the stream fed in pieces of `chunk` bytes; returns the frames and the first error.
func decodeStream(_ bytes: [UInt8], chunks: [Int]) -> (frames: [Frame], error: MotanCodecError?) {
    var decoder = FrameDecoder()
    var frames: [Frame] = []
    var position = 0
    var chunkIndex = 0
    while position < bytes.count {
        let size = Swift.max(1, chunks.isEmpty ? bytes.count : chunks[chunkIndex % chunks.count])
        chunkIndex += 1
        let end = Swift.min(bytes.count, position + size)
        decoder.feed(bytes[position..<end])
        position = end
        do {
            while let frame = try decoder.next() { frames.append(frame) }
        } catch {
            return (frames, error)
        }
    }
    do {
        try decoder.finish()
    } catch {
        return (frames, error)
    }
    return (frames, nil)
}

func encoded(_ frame: Frame) -> [UInt8] {
    var output: [UInt8] = []
    FrameEncoder.encode(frame, into: &output)
    return output
}

func pairs(_ meta: Meta) -> [MetaPair] { meta.map { MetaPair($0.key, $0.value) } }

struct MetaPair: Hashable, CustomStringConvertible {
    var key: String
    var value: String
    init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
    var description: String { "\(key)=\(value)" }
}

/// The golden frames captured from motan-go and motan-php peers, looked up next to the package.
enum GoldenVectors {
    static let directory: String = {
        var components = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(3)  // Tests/MotanCodecTests/TestSupport.swift
        return components.joined(separator: "/") + "/../shared/vectors/motan2"
    }()

    static let isAvailable: Bool = {
        let found = access(directory + "/README.txt", R_OK) == 0
        if !found { print("SKIP: golden vectors not found at \(directory); vector tests skipped") }
        return found
    }()

    static func bytes(_ name: String) -> [UInt8] {
        hex(readText(directory + "/" + name + ".hex"))
    }

    static func fileNames(in subdirectory: String = "") -> [String] {
        let path = subdirectory.isEmpty ? directory : directory + "/" + subdirectory
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".hex") { names.append(String(name.dropLast(4))) }
        }
        return names.sorted()
    }

    private static func readText(_ path: String) -> String {
        guard let file = fopen(path, "rb") else { preconditionFailure("cannot open \(path)") }
        defer { fclose(file) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: data, as: UTF8.self).trimmingWhitespace()
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars.drop { $0.properties.isWhitespace }
        var trimmed = String(String.UnicodeScalarView(scalars))
        while let last = trimmed.unicodeScalars.last, last.properties.isWhitespace { trimmed.removeLast() }
        return trimmed
    }
}
