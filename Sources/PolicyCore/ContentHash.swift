import Crypto

/// Content hashes of canonical values: `sha256:` and 64 hex digits.
public enum ContentHash {
    public static func of(_ value: Value) -> String {
        of(bytes: JSONWriter.compactBytes(value.canonical))
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
