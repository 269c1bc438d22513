/// NeuVector's and Kubernetes' rules for names, keys, paths and filters, as pure checks.
/// Each returns nil when the text is acceptable, or the problem in words.
public enum NeuVectorNames {
    static func isAlnum(_ c: Unicode.Scalar) -> Bool { LabelSelector.isAlnum(c) }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39)
    }

    /// `^[a-zA-Z0-9]+[.:a-zA-Z0-9_-]*$` (`isObjectNameValid`): group, rule and sensor names.
    public static func isObjectName(_ s: String) -> Bool {
        guard let first = s.utf8.first, isAlnum(first) else { return false }
        return s.utf8.allSatisfy { isAlnum($0) || $0 == 0x2e || $0 == 0x3a || $0 == 0x5f || $0 == 0x2d }
    }

    /// `^[/a-zA-Z0-9]+[/.:a-zA-Z0-9_-]*$` (`isNamePathValid`): criteria keys.
    public static func isCriteriaKey(_ s: String) -> Bool {
        guard let first = s.utf8.first, isAlnum(first) || first == 0x2f else { return false }
        return s.utf8.allSatisfy { isAlnum($0) || $0 == 0x2f || $0 == 0x2e || $0 == 0x3a || $0 == 0x5f || $0 == 0x2d }
    }

    /// A Kubernetes object name (DNS-1123 subdomain): lower-case alphanumerics, `-` and `.`, at most 253.
    public static func isDNS1123Subdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNS1123Label($0) }
    }

    /// A DNS-1123 label: lower-case alphanumerics and `-`, at most 63, alphanumeric at both ends.
    public static func isDNS1123Label(_ s: String) -> Bool {
        isDNS1123Label(Substring(s))
    }

    static func isDNS1123Label(_ s: Substring) -> Bool {
        let bytes = s.utf8
        guard let first = bytes.first, let last = bytes.last, bytes.count <= 63 else { return false }
        func ok(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) }
        return ok(first) && ok(last) && bytes.allSatisfy { ok($0) || $0 == 0x2d }
    }

    /// Go's `filepath.Clean` for absolute and relative slash paths.
    public static func cleanPath(_ path: String) -> String {
        if path.isEmpty { return "." }
        if path.utf8.count > 1, path.utf8.last != 0x2f, !path.containsBytes("//"), !path.containsBytes("/."), path.utf8.first == 0x2f {
            return path  // already clean: absolute, no empty, '.' or '..' elements, no trailing slash
        }
        let rooted = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !rooted {
                    parts.append(part)
                }
                continue
            }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if rooted { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// `validateCrdProcessRules`: `*`, empty, or an absolute path without a trailing `/`, without `<>`,
    /// with at most one `*`; no deny-all.
    public static func processRuleProblem(name: String, path: String, action: RuleAction) -> String? {
        if path.isEmpty {
            if name == "*" { return "a process rule named '*' needs a path" }
            if name.isEmpty { return "a process rule needs a name or a path" }
            return nil
        }
        if path == "*" || path == "/*" {
            if name == "*" && action == .deny { return "a rule that denies every process is not allowed" }
            return nil
        }
        guard path.hasPrefix("/") else { return "process path '\(path)' must be absolute, '*' or empty" }
        if path.hasSuffix("/") { return "process path '\(path)' must not end with '/'" }
        if path.containsByte(0x3c) || path.containsByte(0x3e) { return "process path '\(path)' must not contain '<' or '>'" }
        if path.utf8.filter({ $0 == 0x2a }).count > 1 { return "process path '\(path)' may hold at most one '*'" }
        let cleaned = cleanPath(path)
        if cleaned == "/" || cleaned == "." { return "process path '\(path)' names no program" }
        return nil
    }

    /// `validateCrdFileRules` / `parseFileFilter`: a cleaned path with a directory and a file part, without
    /// `[]()<>`, `..` or `/./`.
    public static func fileFilterProblem(_ filter: String) -> String? {
        if filter.containsBytes("..") || filter.containsBytes("/./") {
            return "file filter '\(filter)' must not contain '..' or '/./'"
        }
        if filter.utf8.contains(where: { [0x5b, 0x5d, 0x28, 0x29, 0x3c, 0x3e].contains($0) }) {
            return "file filter '\(filter)' must not contain any of []()<>"
        }
        let cleaned = cleanPath(filter)
        if cleaned == "." || cleaned == "/" { return "file filter '\(filter)' names no file" }
        guard cleaned.hasPrefix("/"), let slash = cleaned.lastIndex(of: "/"), slash != cleaned.startIndex,
              cleaned[cleaned.index(after: slash)...].count > 0 else {
            return "file filter '\(filter)' needs a directory part and a file part, e.g. /etc/passwd or /var/log/*"
        }
        return nil
    }

    /// The base name of a path (what NeuVector derives an empty process name from).
    public static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
