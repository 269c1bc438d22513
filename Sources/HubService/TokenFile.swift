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
/// ```
public struct TokenFile: Sendable {
    public struct Entry: Sendable, Hashable {
        public var principal: Principal
        /// SHA-256 of the token, 32 bytes.
        public var digest: [UInt8]
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Reads a tokens file; throws `ConfigError` naming the file, line and column of a bad entry.
    public static func load(path: String) throws(ConfigError) -> TokenFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, line: 0, column: 0, message: "cannot read the tokens file")
        }
        let nodes: [YAMLNode]
        switch YAMLParser.parseDocuments([UInt8](data), file: path) {
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
            entries.append(Entry(principal: Principal(name: name, role: role, namespaces: namespaces), digest: digest))
        }
        return TokenFile(entries: entries)
    }

    /// The principal a presented token belongs to, or nil. Every entry is compared, each in constant
    /// time, so the time taken says nothing about which digest bytes matched.
    public func principal(token: String) -> Principal? {
        let digest = Array(SHA256.hash(data: Array(token.utf8)))
        var found: Principal?
        for entry in entries where TokenFile.constantTimeEqual(entry.digest, digest) && found == nil {
            found = entry.principal
        }
        return found
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
        let token = "phub_" + bytes.map { String(format: "%02x", $0) }.joined()
        let digest = SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
        return (token, digest)
    }

    /// Appends an entry to the tokens file (created with mode 0600 when missing); the token itself is
    /// not written. Throws `ConfigError` when the name is taken or the file cannot be written.
    public static func append(path: String, name: String, role: Role, namespaces: [String], sha256: String) throws(ConfigError) {
        var text = ""
        if FileManager.default.fileExists(atPath: path) {
            let existing = try load(path: path)
            if existing.entries.contains(where: { $0.principal.name == name }) {
                throw ConfigError(path: path, line: 0, column: 0, message: "a token named '\(name)' exists already")
            }
            text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if !text.contains("tokens:") { text = "tokens:\n" }
            if !text.hasSuffix("\n") { text += "\n" }
        } else {
            text = "# PolicyHub API tokens: SHA-256 of each token, never the token.\ntokens:\n"
        }
        guard TokenFile.isPlainName(name), namespaces.allSatisfy(NeuVectorNames.isDNS1123Label) else {
            throw ConfigError(path: path, line: 0, column: 0,
                              message: "token names use letters, digits, '-', '_', '.', '@'; namespaces are DNS-1123 labels")
        }
        text += "- name: \(name)\n  role: \(role.rawValue)\n"
        if !namespaces.isEmpty { text += "  namespaces: [\(namespaces.joined(separator: ", "))]\n" }
        text += "  sha256: \(sha256)\n"
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
              rename(temporary, path) == 0 else {
            throw ConfigError(path: path, line: 0, column: 0, message: "cannot write the tokens file")
        }
    }
}
