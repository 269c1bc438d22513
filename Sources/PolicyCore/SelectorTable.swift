/// Interned selectors with memoised coverage and an index that finds the selectors one selector may
/// cover without comparing against all of them.
struct SelectorTable {
    private(set) var selectors: [GroupSelector] = []
    private var ids: [GroupSelector: Int] = [:]
    private var classes: [GroupClass] = []
    private var memo: [Int: Bool] = [:]
    /// Selector ids by an `=` criterion they carry, as (normalised key, value).
    private var byEquality: [String: [String: [Int]]] = [:]
    private var coveredMemo: [Int: [Int]] = [:]

    mutating func intern(_ selector: GroupSelector) -> Int {
        if let id = ids[selector] { return id }
        let id = selectors.count
        selectors.append(selector)
        ids[selector] = id
        classes.append(GroupClass.of(selector))
        for c in selector.criteria where c.op == .equal {
            byEquality[Coverage.normalisedKey(c.key), default: [:]][c.value, default: []].append(id)
        }
        coveredMemo.removeAll(keepingCapacity: true)
        return id
    }

    /// Whether selector `g` covers selector `n` (memoised).
    mutating func covers(_ g: Int, _ n: Int) -> Bool {
        if g == n { return true }
        let key = g << 32 | n
        if let hit = memo[key] { return hit }
        let a = selectors[g]
        let b = selectors[n]
        let result = Coverage.covers(a.criteria, gClass: classes[g], b.criteria, nClass: classes[n],
                                     sameName: a.name == b.name)
        memo[key] = result
        return result
    }

    /// Every interned selector that `g` covers, itself included.
    mutating func covered(by g: Int) -> [Int] {
        if let hit = coveredMemo[g] { return hit }
        var candidates: [Int]
        if let literal = literalKey(of: selectors[g]) {
            var set = Set<Int>()
            for value in literal.values { set.formUnion(byEquality[literal.key]?[value] ?? []) }
            candidates = set.sorted()
        } else {
            candidates = Array(selectors.indices)
        }
        candidates = candidates.filter { covers(g, $0) }
        if !candidates.contains(g) { candidates.append(g) }
        coveredMemo[g] = candidates
        return candidates
    }

    /// A key on which every criterion of the selector is `=` with a literal value: a covered selector must
    /// carry one of those values on that key.
    private func literalKey(of selector: GroupSelector) -> (key: String, values: [String])? {
        switch GroupClass.of(selector) {
        case .external, .nodes, .containers: return nil
        // an address group covers the address groups whose every value it lists (Coverage.covers)
        case .address, .learned, .serviceIP, .federal, .reserved, .custom: break
        }
        var byKey: [String: [Criterion]] = [:]
        for c in selector.criteria { byKey[Coverage.normalisedKey(c.key), default: []].append(c) }
        for key in byKey.keys.sorted() {
            let group = byKey[key] ?? []
            if group.allSatisfy({ $0.op == .equal && $0.value != "any" && !$0.value.containsByte(0x2a) && !$0.value.containsByte(0x3f) }) {
                return (key, group.map(\.value))
            }
        }
        return nil
    }
}
