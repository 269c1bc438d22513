import Crypto
import Foundation
import PolicyCore
import PolicyYAML

/// The tokens file: each token's name, role, namespaces and the SHA-256 of the token, never the token.
///
/// ```yaml
/// tokens:
/// - name: security-team
///   role: security-admin
///   sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
/// - name: payments-team
///   role: namespace-owner
///   namespaces: [payments]
///   sha256: ...
///   created: 2026-12-01T09:00:00Z
///   expires: 2027-03-01T09:00:00Z    # optional: after it the token is refused
/// ```
public struct TokenFile: Sendable {
    public struct Entry: Sendable, Hashable {
        public var principal: Principal
        /// SHA-256 of the token, 32 bytes.
        public var digest: [UInt8]
        /// When the token was made and when it stops working (seconds since 1970), when known.
        public var created: Double?
        public var expires: Double?
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Reads a tokens file; throws `ConfigError` naming the file, line and column of a bad entry.
    public static func load(path: String) throws(ConfigError) -> TokenFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, line: 0, column: 0, message: "cannot read the tokens file")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Reads the bytes of a tokens file.
    static func parse(_ data: [UInt8], path: String) throws(ConfigError) -> TokenFile {
        let nodes: [YAMLNode]
        switch YAMLParser.parseDocuments(data, file: path) {
        case .success(let parsed): nodes = parsed
        case .failure(let diagnostic): throw ConfigError(diagnostic)
        }
        guard let root = nodes.first else { return TokenFile(entries: []) }
        guard let list = root["tokens"] else {
            throw ConfigError(path: path, line: Int(root.line), column: Int(root.column), message: "expected a mapping with 'tokens:'")
        }
        var entries: [Entry] = []
        var names = Set<String>()
        for item in list.items {
            func fail(_ message: String, _ node: YAMLNode? = nil) -> ConfigError {
                let at = node ?? item
                return ConfigError(path: path, line: Int(at.line), column: Int(at.column), message: message)
            }
            guard let name = item["name"]?.scalar, !name.isEmpty else { throw fail("a token needs a name") }
            guard names.insert(name).inserted else { throw fail("token name '\(name)' appears twice", item["name"]) }
            guard let roleText = item["role"]?.scalar, let role = Role(rawValue: roleText) else {
                throw fail("role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))", item["role"])
            }
            guard let hex = item["sha256"]?.scalar, let digest = TokenFile.bytes(hex: hex), digest.count == 32 else {
                throw fail("sha256 must be 64 hexadecimal digits (the SHA-256 of the token)", item["sha256"])
            }
            let namespaces = item["namespaces"]?.items.compactMap(\.scalar) ?? []
            if role == .namespaceOwner && namespaces.isEmpty {
                throw fail("a namespace-owner token needs namespaces: [...]")
            }
            var times: [Double?] = []
            for key in ["created", "expires"] {
                guard let node = item[key] else {
                    times.append(nil)
                    continue
                }
                guard let text = node.scalar, let time = TokenFile.time(text) else {
                    throw fail("\(key) must be a UTC time such as 2027-03-01T09:00:00Z", node)
                }
                times.append(time)
            }
            entries.append(Entry(principal: Principal(name: name, role: role, namespaces: namespaces), digest: digest,
                                 created: times[0], expires: times[1]))
        }
        return TokenFile(entries: entries)
    }

    /// The principal a presented token belongs to, or nil. Every entry is compared, each in constant
    /// time, so the time taken says nothing about which digest bytes matched.
    /// A token past its `expires` time is refused.
    public func principal(token: String, at now: Double = Date().timeIntervalSince1970) -> Principal? {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        var found: Principal?
        for entry in entries where TokenFile.constantTimeEqual(entry.digest, digest) && found == nil {
            if let expires = entry.expires, expires <= now { continue }
            found = entry.principal
        }
        return found
    }

    /// `2027-03-01T09:00:00Z` as seconds since 1970, or nil.
    public static func time(_ text: String) -> Double? {
        ISO8601DateFormatter().date(from: text)?.timeIntervalSince1970
    }

    /// Seconds since 1970 as `2027-03-01T09:00:00Z`.
    public static func timeText(_ seconds: Double) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds.rounded(.down)))
    }

    /// A token name that YAML reads back as the same string without quoting.
    public static func isPlainName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.@".unicodeScalars.contains($0)) }
            && name.count <= 100
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<a.count { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    /// Lower-case hexadecimal digits of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// A new random token (256 bits from the system's secure generator) and the hex SHA-256 to store.
    public static func newToken() -> (token: String, sha256: String) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = "phub_" + hex(bytes)
        return (token, hex(Array(SHA256.hash(data: Array(token.utf8)))))
    }

    /// Appends an entry to the tokens file (created with mode 0600 when missing); the token itself is
    /// not written. Throws `ConfigError` when the name is taken or the file cannot be read or written: an
    /// existing file is never replaced by one that lost its entries.
    public static func append(path: String, name: String, role: Role, namespaces: [String], sha256: String,
                              created: Double = Date().timeIntervalSince1970, expires: Double? = nil) throws(ConfigError) {
        guard TokenFile.isPlainName(name), namespaces.allSatisfy(NeuVectorNames.isDNS1123Label) else {
            throw ConfigError(path: path, line: 0, column: 0,
                              message: "token names use letters, digits, '-', '_', '.', '@'; namespaces are DNS-1123 labels")
        }
        var text = "# PolicyHub API tokens: SHA-256 of each token, never the token.\ntokens:\n"
        if let existing = try existingText(path) {
            let file = try parse(Array(existing.utf8), path: path)
            if file.entries.contains(where: { $0.principal.name == name }) {
                throw ConfigError(path: path, line: 0, column: 0, message: "a token named '\(name)' exists already")
            }
            if file.entries.isEmpty && !existing.contains("tokens:") {
                text = existing + (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + "tokens:\n"
            } else {
                text = existing + (existing.hasSuffix("\n") ? "" : "\n")
            }
        }
        text += entryText(name: name, role: role, namespaces: namespaces, sha256: sha256, created: created, expires: expires)
        try replace(path, with: text)
    }

    /// Removes the token named `name`; the file is written again from its entries (comments are not kept).
    public static func revoke(path: String, name: String) throws(ConfigError) {
        guard let existing = try existingText(path) else {
            throw ConfigError(path: path, line: 0, column: 0, message: "there is no tokens file")
        }
        let file = try parse(Array(existing.utf8), path: path)
        guard file.entries.contains(where: { $0.principal.name == name }) else {
            let known = file.entries.map(\.principal.name)
            throw ConfigError(path: path, line: 0, column: 0,
                              message: "no token is named '\(name)' (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        var text = "# PolicyHub API tokens: SHA-256 of each token, never the token.\ntokens:\n"
        for entry in file.entries where entry.principal.name != name {
            text += entryText(name: entry.principal.name, role: entry.principal.role, namespaces: entry.principal.namespaces,
                              sha256: hex(entry.digest), created: entry.created,
                              expires: entry.expires)
        }
        try replace(path, with: text)
    }

    /// The file's text, nil when there is no file; an error when it exists but cannot be read as text.
    static func existingText(_ path: String) throws(ConfigError) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(path: path, line: 0, column: 0, message: "the tokens file exists but cannot be read as UTF-8 text; it was left as it is")
        }
        return text
    }

    static func entryText(name: String, role: Role, namespaces: [String], sha256: String, created: Double?, expires: Double?) -> String {
        var text = "- name: \(name)\n  role: \(role.rawValue)\n"
        if !namespaces.isEmpty { text += "  namespaces: [\(namespaces.joined(separator: ", "))]\n" }
        text += "  sha256: \(sha256)\n"
        if let created { text += "  created: \(timeText(created))\n" }
        if let expires { text += "  expires: \(timeText(expires))\n" }
        return text
    }

    /// Writes `text` over `path` atomically, mode 0600.
    static func replace(_ path: String, with text: String) throws(ConfigError) {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
              rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ConfigError(path: path, line: 0, column: 0, message: "cannot write the tokens file")
        }
    }
}
