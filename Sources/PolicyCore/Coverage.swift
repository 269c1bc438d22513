/// Selector coverage (SEMANTICS §3.7): does every workload that `N` can select also match `G`?
/// Judged from the criteria alone, conservatively: when in doubt, `G` does not cover `N`.
public enum Coverage {
    /// `domain` and `namespace` are the same key for NeuVector.
    public static func normalisedKey(_ key: String) -> String { key == "namespace" ? "domain" : key }

    /// Whether `g` covers `n`.
    public static func covers(_ g: GroupSelector, _ n: GroupSelector) -> Bool {
        covers(g.criteria, gClass: GroupClass.of(g), n.criteria, nClass: GroupClass.of(n), sameName: g.name == n.name)
    }

    static func covers(_ gCriteria: [Criterion], gClass: GroupClass, _ nCriteria: [Criterion], nClass: GroupClass,
                       sameName: Bool) -> Bool
    {
        switch (gClass, nClass) {
        case (.external, _), (_, .external): return gClass == .external && nClass == .external
        case (.nodes, _), (_, .nodes): return gClass == .nodes && nClass == .nodes
        case (.address, _), (_, .address):
            guard gClass == .address, nClass == .address else { return false }
            let gValues = Set(gCriteria.filter { $0.key == "address" }.map(\.value))
            return nCriteria.filter { $0.key == "address" }.allSatisfy { gValues.contains($0.value) }
        case (.containers, _): return true
        case (.learned, _), (.serviceIP, _), (.federal, _), (.reserved, _), (.custom, _): break
        }
        if gCriteria.isEmpty { return sameName }
        var byKey: [String: [Criterion]] = [:]
        for c in gCriteria { byKey[normalisedKey(c.key), default: []].append(c) }
        for (key, group) in byKey {
            var values: [String] = []
            for c in nCriteria where normalisedKey(c.key) == key {
                if c.op == .equal {
                    values.append(c.value)
                } else if !c.op.isNegative {
                    return false  // N also selects by prefix/contains/regex on this key: cannot judge
                }
            }
            if values.isEmpty { return false }
            for v in values where !satisfies(group, v) { return false }
        }
        return true
    }

    /// Whether a value satisfies the criteria on one key: OR'd when any op is positive, AND'd when all are
    /// negative.
    public static func satisfies(_ criteria: [Criterion], _ value: String) -> Bool {
        if criteria.contains(where: { !$0.op.isNegative }) {
            return criteria.contains { matches($0, value) }
        }
        return criteria.allSatisfy { matches($0, value) }
    }

    /// Whether one criterion accepts `value` (`isCriterionMet`).
    public static func matches(_ c: Criterion, _ value: String) -> Bool {
        switch c.op {
        case .equal: return c.value == "any" || Glob.matches(c.value, value)
        case .notEqual: return !Glob.matches(c.value, value)
        case .contains: return value.contains(c.value)
        case .prefix: return value.hasPrefix(c.value)
        case .regex: return regexMatches(c.value, value)
        case .notRegex: return !regexMatches(c.value, value)
        }
    }

    static func regexMatches(_ pattern: String, _ value: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return value.contains(regex)
    }

    /// Whether a regular expression compiles; the error text when it does not.
    public static func regexProblem(_ pattern: String) -> String? {
        do {
            _ = try Regex(pattern)
            return nil
        } catch {
            return "\(error)"
        }
    }
}

/// NeuVector's glob values: `*` any run of characters, `?` one character, anchored at both ends.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        if !pattern.containsByte(0x2a) && !pattern.containsByte(0x3f) { return pattern == text }
        let p = Array(pattern.unicodeScalars)
        let t = Array(text.unicodeScalars)
        var pi = 0
        var ti = 0
        var star = -1
        var mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
