/// What the hub checks and rewrites in URLs: path segments built from names that may come from a member,
/// requests whose path a client would normalise away from the one built, and passwords in URLs.
public enum RequestURL {
    /// One path segment with every byte outside RFC 3986's unreserved set percent-encoded; `.` and `..` are
    /// encoded too, so no segment can ever be a dot segment.
    public static func segment(_ text: String) -> String {
        if text == "." || text == ".." { return String(repeating: "%2E", count: text.count) }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + hex(byte >> 4) + hex(byte & 0x0f)
            }
        }
        return out
    }

    static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
            || b == 0x2d || b == 0x2e || b == 0x5f || b == 0x7e
    }

    static func hex(_ nibble: UInt8) -> String { String(UnicodeScalar(nibble < 10 ? 0x30 + nibble : 0x41 + nibble - 10)) }

    /// Why a request to `url` must not be sent, or nil: a fragment (a name that ended the path early), or a
    /// path segment that is `.` or `..` once percent-decoded (a client or proxy would resolve it, sending
    /// the request, with the hub's credentials, to another path than the one built).
    public static func pathProblem(_ url: String) -> String? {
        // every request passes here: bytes, not String searches
        var url = url
        let dots = url.withUTF8 { bytes -> Int in
            if bytes.contains(UInt8(ascii: "#")) { return -1 }
            guard let scheme = find(schemeMark, in: bytes, from: 0),
                  var index = bytes[(scheme + 3)...].firstIndex(of: UInt8(ascii: "/")) else { return 0 }
            // each segment of the path (to the query): how many characters it has decoded, and whether all are dots
            var characters = 0, allDots = true
            while true {
                let byte = index < bytes.count ? bytes[index] : UInt8(ascii: "?")
                if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") {
                    if allDots && (characters == 1 || characters == 2) { return characters }
                    if byte == UInt8(ascii: "?") { return 0 }
                    characters = 0
                    allDots = true
                    index += 1
                    continue
                }
                var decoded = byte
                if byte == UInt8(ascii: "%"), index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                    decoded = high << 4 | low
                    index += 3
                } else {
                    index += 1
                }
                characters += 1
                if decoded != UInt8(ascii: ".") { allDots = false }
            }
        }
        if dots < 0 { return "the URL holds a '#' (a fragment): a name or namespace was not encoded" }
        if dots == 0 { return nil }
        return "the path has a '\(String(repeating: ".", count: dots))' segment, which would send the request to another path than the one built"
    }

    static let schemeMark = Array("://".utf8)

    /// Where `needle` first occurs in `bytes` at or after `from`.
    static func find(_ needle: [UInt8], in bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        guard bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
        for start in from...(bytes.count - needle.count) where bytes[start] == needle[0] {
            if (1..<needle.count).allSatisfy({ bytes[start + $0] == needle[$0] }) { return start }
        }
        return nil
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `url` with the password of its user information replaced by `***` (`https://user:***@host/`), so that
    /// it may be printed, logged or stored; other URLs unchanged.
    public static func redacted(_ url: String) -> String {
        // most URLs carry no user information: nothing to do (and no String search) without an '@'
        guard url.utf8.contains(UInt8(ascii: "@")), let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return url }
        let userinfo = authority[..<at]
        let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] } ?? userinfo
        return String(url[..<scheme.upperBound]) + user + ":***" + String(rest[at...])
    }

    /// Every URL-looking word of `text` redacted (for messages that quote a URL, such as libcurl's).
    public static func redactedText(_ text: String) -> String {
        guard text.contains("@"), text.contains("://") else { return text }
        return text.split(separator: " ", omittingEmptySubsequences: false).map { redacted(String($0)) }.joined(separator: " ")
    }

    /// The scheme of `url`, lower-cased (`HTTPS://` is https), or nil when it has none.
    public static func scheme(of url: String) -> String? {
        guard let end = url.range(of: "://") else { return nil }
        let scheme = url[..<end.lowerBound]
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }) else { return nil }
        return scheme.lowercased()
    }
}
