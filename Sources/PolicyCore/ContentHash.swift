import Crypto

/// Content hashes of canonical values: `sha256:` and 64 hex digits.
public enum ContentHash {
    public static func of(_ value: Value) -> String {
        of(bytes: JSONWriter.compactBytes(value.canonical))
    }

    /// The hash of a value whose mappings are already sorted (skips the sort).
    static func of(canonical value: Value) -> String {
        of(bytes: JSONWriter.compactBytes(value))
    }

    public static func of(bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        var hex = "sha256:"
        hex.reserveCapacity(71)
        let digits = Array("0123456789abcdef".unicodeScalars)
        for byte in digest {
            hex.unicodeScalars.append(digits[Int(byte >> 4)])
            hex.unicodeScalars.append(digits[Int(byte & 0x0f)])
        }
        return hex
    }
}
