/// A readable difference between two values: one line per changed leaf, with its path.
/// List items that carry a `name` (rules) are matched by name, others by position.
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
            let named = (a + b).allSatisfy { $0["name"]?.stringValue != nil }
            if named {
                var out: [Change] = []
                let oldByName = Dictionary(a.map { ($0["name"]?.stringValue ?? "", $0) }, uniquingKeysWith: { x, _ in x })
                let newByName = Dictionary(b.map { ($0["name"]?.stringValue ?? "", $0) }, uniquingKeysWith: { x, _ in x })
                for name in Set(oldByName.keys).union(newByName.keys).sorted() {
                    let child = "\(path)[\(name)]"
                    switch (oldByName[name], newByName[name]) {
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
