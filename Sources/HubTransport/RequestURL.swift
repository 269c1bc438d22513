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
        if url.utf8.contains(UInt8(ascii: "#")) { return "the URL holds a '#' (a fragment): a name or namespace was not encoded" }
        guard let path = path(of: url) else { return nil }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            let decoded = percentDecoded(segment)
            if decoded == "." || decoded == ".." {
                return "the path has a '\(decoded)' segment, which would send the request to another path than the one built"
            }
        }
        return nil
    }

    /// The path of an absolute URL (after the authority, before the query), or nil when there is none.
    static func path(of url: String) -> Substring? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let path = rest[slash...]
        return path.firstIndex(of: "?").map { path[..<$0] } ?? path
    }

    static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `url` with the password of its user information replaced by `***` (`https://user:***@host/`), so that
    /// it may be printed, logged or stored; other URLs unchanged.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
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
