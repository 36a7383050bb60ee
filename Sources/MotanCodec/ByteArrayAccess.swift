extension Array where Element == UInt8 {
    /// `withUnsafeBytes` is `rethrows` and erases typed errors; this keeps them.
    @inlinable
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { bytes in
            Result { () throws(E) -> R in try body(bytes) }
        }
        return try result.get()
    }
}
