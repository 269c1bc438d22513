extension String {
    /// Whether the UTF-8 bytes of `needle` occur in this string. A byte search: much cheaper than the
    /// Unicode-aware `contains(_: some StringProtocol)`, and exact for the ASCII needles the checks use.
    func containsBytes(_ needle: StaticString) -> Bool {
        needle.withUTF8Buffer { pattern in
            if let found = utf8.withContiguousStorageIfAvailable({ Self.search($0, pattern) }) { return found }
            return Array(utf8).withUnsafeBufferPointer { Self.search($0, pattern) }
        }
    }

    private static func search(_ haystack: UnsafeBufferPointer<UInt8>, _ pattern: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = pattern.first else { return true }
        let n = haystack.count
        let m = pattern.count
        guard m <= n else { return false }
        var i = 0
        while i <= n - m {
            if haystack[i] == first {
                var j = 1
                while j < m, haystack[i + j] == pattern[j] { j += 1 }
                if j == m { return true }
            }
            i += 1
        }
        return false
    }

    /// Whether the string holds the ASCII byte `byte`.
    func containsByte(_ byte: UInt8) -> Bool { utf8.contains(byte) }
}

/// Whether two byte sequences are equal, eight bytes at a time (a spec of a few kilobytes per object, for
/// every object of a fleet, in a drift report).
func bytesEqual(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return a.withUnsafeBytes { x in
        b.withUnsafeBytes { y in
            let count = x.count
            var offset = 0
            while offset + 8 <= count {
                if x.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != y.loadUnaligned(fromByteOffset: offset, as: UInt64.self) {
                    return false
                }
                offset += 8
            }
            while offset < count {
                if x[offset] != y[offset] { return false }
                offset += 1
            }
            return true
        }
    }
}
