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

    /// `validateCrdProcessRules` (crdsecurityrule.go L2565-2625): name and path are trimmed first; then
    /// `*`, empty, or an absolute path without a trailing `/`, without `<>`, with at most one `*`, that
    /// does not clean to `/`; no deny-all.
    public static func processRuleProblem(name rawName: String, path rawPath: String, action: RuleAction) -> String? {
        let name = rawName.trimmed
        let path = rawPath.trimmed
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
        if name == "*" && cleaned == "/*" && action == .deny { return "a rule that denies every process is not allowed" }
        return nil
    }

    /// `validateCrdFileRules` and `parseFileFilter` (crdsecurityrule.go L2628-2660, file_monitor.go L37-70):
    /// the filter is trimmed and cleaned first (so `/lib/` and `/test/./ab/*` are fine), then it must have a
    /// directory part and a file part and hold none of `[]()<>`, `..` or `/./`.
    public static func fileFilterProblem(_ filter: String) -> String? {
        let cleaned = cleanPath(filter.trimmed)
        if cleaned == "." || cleaned == "/" { return "file filter '\(filter)' names no file" }
        if cleaned.utf8.contains(where: { [0x5b, 0x5d, 0x28, 0x29, 0x3c, 0x3e].contains($0) }) {
            return "file filter '\(filter)' must not contain any of []()<>"
        }
        if cleaned.containsBytes("..") || cleaned.containsBytes("/./") {
            return "file filter '\(filter)' must not reach above its folder ('..')"
        }
        guard let slash = cleaned.lastIndex(of: "/"), !cleaned[cleaned.index(after: slash)...].isEmpty else {
            return "file filter '\(filter)' needs a directory part and a file part, e.g. /etc/passwd or /var/log/*"
        }
        // NeuVector turns the filter into a regular expression ('*' becomes '.*'): a repetition right after
        // it is a nested repetition, which Go's regexp refuses
        if cleaned.containsBytes("*+") || cleaned.containsBytes("*{") {
            return "file filter '\(filter)' does not make a valid pattern ('*' followed by '+' or '{')"
        }
        return nil
    }

    /// The base name of a path (what NeuVector derives an empty process name from).
    public static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    // MARK: - Address criteria (group.go validateAddressRange / validateDomainName, share/utils ParseIPRange)

    /// Why NeuVector refuses `value` as an `address` criterion, or nil: one IP, a CIDR, or a range
    /// `low-high` (low not above high); otherwise a domain name (`example.com`, `*.example.com` with at
    /// least two labels after the star, optionally `vh:`-prefixed), shorter than 256 characters.
    public static func addressProblem(_ value: String) -> String? {
        if ipRange(value) != nil { return nil }
        if isDomainName(value) { return nil }
        return "address '\(value)' is neither an IP address, a CIDR or an ascending range (1.2.3.4, 10.0.0.0/8, 10.0.0.1-10.0.0.9) nor a domain name (example.com, *.example.com)"
    }

    /// The first and last address (16 bytes each, IPv4 mapped) of an IP, CIDR or range.
    static func ipRange(_ value: String) -> ([UInt8], [UInt8])? {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            let cidr = parts[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            if cidr.count == 2 {
                guard let ip = ip(cidr[0]), let bits = Int(cidr[1]), cidr[1].allSatisfy(\.isASCIIDigit) else { return nil }
                let width = isIPv4(cidr[0]) ? 32 : 128
                guard bits >= 0 && bits <= width else { return nil }
                let prefix = bits + (128 - width)
                var low = ip, high = ip
                for bit in prefix..<128 {
                    low[bit / 8] &= ~(0x80 >> UInt8(bit % 8))
                    high[bit / 8] |= (0x80 >> UInt8(bit % 8))
                }
                return (low, high)
            }
            guard cidr.count == 1, let single = ip(parts[0]) else { return nil }
            return (single, single)
        case 2:
            // an ascending range only (group.go validateAddressRange: bytes.Compare(ip, ipr) > 0 is refused)
            guard let low = ip(parts[0]), let high = ip(parts[1]), !high.lexicographicallyPrecedes(low) else { return nil }
            return (low, high)
        default:
            return nil
        }
    }

    static func isIPv4(_ text: String) -> Bool { !text.contains(":") }

    /// Go's `net.ParseIP`: dotted IPv4 (no leading zeros) or IPv6, as 16 bytes.
    static func ip(_ text: String) -> [UInt8]? {
        if isIPv4(text) {
            guard let v4 = ipv4(text) else { return nil }
            return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + v4
        }
        return ipv6(text)
    }

    static func ipv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let n = Int(part), n <= 255,
                  part.count == 1 || part.first != "0" else { return nil }
            out.append(UInt8(n))
        }
        return out
    }

    static func ipv6(_ text: String) -> [UInt8]? {
        let halves = text.splitAtDoubleColons()
        guard halves.count <= 2 else { return nil }
        func parse(_ part: String, allowV4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            for (index, field) in fields.enumerated() {
                if allowV4 && index == fields.count - 1 && field.contains(".") {
                    guard let v4 = ipv4(field) else { return nil }
                    out.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    out.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !field.isEmpty, field.count <= 4, let n = UInt16(field, radix: 16) else { return nil }
                out.append(n)
            }
            return out
        }
        let groups: [UInt16]
        if halves.count == 2 {
            // "::" stands for as many zero groups as the two sides leave out of eight
            guard let head = parse(halves[0], allowV4: false), let rest = parse(halves[1], allowV4: true),
                  head.count + rest.count <= 7 else { return nil }
            groups = head + [UInt16](repeating: 0, count: 8 - head.count - rest.count) + rest
        } else {
            guard let all = parse(text, allowV4: true), all.count == 8 else { return nil }
            groups = all
        }
        return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }

    /// `validateDomainName` (group.go L307-313).
    static func isDomainName(_ name: String) -> Bool {
        // regIPRangeLoose: a value of only digits, '-', '.' and '/' is an address, never a domain
        if !name.isEmpty && name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e || $0 == 0x2f }) {
            return false
        }
        var body = Substring(name)
        var limit = 256
        if body.hasPrefix("vh:") {
            body = body.dropFirst(3)
            limit += 3
        }
        guard name.utf8.count < limit else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) }
        func labelChar(_ c: UInt8) -> Bool { alnum(c) || c == 0x2d || c == 0x5f }
        // a label: one or more alphanumerics, then alphanumerics, '-' or '_'
        func isLabel(_ label: Substring) -> Bool {
            guard let first = label.utf8.first, alnum(first) else { return false }
            return label.utf8.allSatisfy(labelChar)
        }
        let labels = body.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" {
            // regSubDomain: '*' then at least two labels
            return labels.count >= 3 && labels.dropFirst().allSatisfy(isLabel)
        }
        return labels.allSatisfy(isLabel)
    }
}

extension String {
    /// The text split at every "::".
    func splitAtDoubleColons() -> [String] {
        var out: [String] = []
        var current = ""
        var previous: Character?
        for ch in self {
            if ch == ":" && previous == ":" {
                current.removeLast()
                out.append(current)
                current = ""
                previous = nil
                continue
            }
            current.append(ch)
            previous = ch
        }
        out.append(current)
        return out
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
