/// A readable difference between two values: one line per changed leaf, with its path.
/// List items are matched by what identifies them where that is unique in both lists: file rules by
/// `filter`, process rules by `name` and `path` (NeuVector's own keys), network rules by `name`; other
/// items by position.
public enum ValueDiff {
    public struct Change: Sendable, Hashable, CustomStringConvertible {
        public var path: String
        public var old: Value?
        public var new: Value?

        public var description: String {
            switch (old, new) {
            case (nil, let n?): return "+ \(path): \(ValueDiff.short(n))"
            case (let o?, nil): return "- \(path): \(ValueDiff.short(o))"
            case (let o?, let n?): return "~ \(path): \(ValueDiff.short(o)) -> \(ValueDiff.short(n))"
            case (nil, nil): return "  \(path)"
            }
        }
    }

    public static func changes(from old: Value, to new: Value, path: String = "") -> [Change] {
        if old == new { return [] }
        switch (old, new) {
        case (.map(let a), .map(let b)):
            var out: [Change] = []
            let keys = Set(a.map(\.key)).union(b.map(\.key)).sorted()
            for key in keys {
                let child = path.isEmpty ? key : "\(path).\(key)"
                switch (old[key], new[key]) {
                case (let x?, let y?): out += changes(from: x, to: y, path: child)
                case (let x?, nil): out.append(Change(path: child, old: x, new: nil))
                case (nil, let y?): out.append(Change(path: child, old: nil, new: y))
                case (nil, nil): break
                }
            }
            return out
        case (.list(let a), .list(let b)):
            if let oldByKey = keyed(a), let newByKey = keyed(b) {
                var out: [Change] = []
                let old = Dictionary(oldByKey, uniquingKeysWith: { x, _ in x })
                let new = Dictionary(newByKey, uniquingKeysWith: { x, _ in x })
                // in the order of the new list, then what only the old one had
                var order = newByKey.map(\.0)
                order += oldByKey.map(\.0).filter { new[$0] == nil }
                for key in order {
                    let child = "\(path)[\(key)]"
                    switch (old[key], new[key]) {
                    case (let x?, let y?): out += changes(from: x, to: y, path: child)
                    case (let x?, nil): out.append(Change(path: child, old: x, new: nil))
                    case (nil, let y?): out.append(Change(path: child, old: nil, new: y))
                    case (nil, nil): break
                    }
                }
                return out
            }
            var out: [Change] = []
            for index in 0..<max(a.count, b.count) {
                let child = "\(path)[\(index)]"
                switch (index < a.count ? a[index] : nil, index < b.count ? b[index] : nil) {
                case (let x?, let y?): out += changes(from: x, to: y, path: child)
                case (let x?, nil): out.append(Change(path: child, old: x, new: nil))
                case (nil, let y?): out.append(Change(path: child, old: nil, new: y))
                case (nil, nil): break
                }
            }
            return out
        case (.null, _), (.bool, _), (.int, _), (.number, _), (.string, _), (.list, _), (.map, _):
            return [Change(path: path, old: old, new: new)]
        }
    }

    /// The items of a list with their keys, or nil when the items do not all have a unique key of one kind.
    static func keyed(_ items: [Value]) -> [(String, Value)]? {
        guard !items.isEmpty else { return [] }
        let kinds: [(Value) -> String?] = [
            { item in item["filter"]?.stringValue },
            { item in
                guard let name = item["name"]?.stringValue, let path = item["path"]?.stringValue else { return nil }
                return "\(name) \(path)"
            },
            { item in item["name"]?.stringValue },
        ]
        for key in kinds {
            let keys = items.map(key)
            guard keys.allSatisfy({ $0 != nil }) else { continue }
            let present = keys.compactMap { $0 }
            if Set(present).count == present.count { return Array(zip(present, items)) }
        }
        return nil
    }

    /// One-line form of a value for diff lines.
    static func short(_ value: Value) -> String {
        switch value {
        case .string(let s): return s
        case .null, .bool, .int, .number, .list, .map:
            let text = JSONWriter.compact(value)
            return text.count > 120 ? String(text.prefix(117)) + "..." : text
        }
    }
}
