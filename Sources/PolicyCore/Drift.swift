/// The drift classes of SEMANTICS §6.
public enum DriftClass: String, Sendable, Hashable, CaseIterable {
    case missing, modified, extra, unmanaged, pending, unreachable
}

/// One difference between what a cluster must hold and what it holds.
public struct DriftFinding: Sendable, Hashable, Comparable {
    public var cluster: String
    public var kind: DriftClass
    public var object: ObjectIdentity?
    /// For `modified`: the paths of the fields that differ.
    public var fields: [String]
    public var message: String

    public init(cluster: String, kind: DriftClass, object: ObjectIdentity?, fields: [String] = [], message: String) {
        self.cluster = cluster
        self.kind = kind
        self.object = object
        self.fields = fields
        self.message = message
    }

    /// What identifies a finding from one report to the next (new / resolved).
    public var key: String { "\(cluster)|\(kind.rawValue)|\(object?.description ?? "")" }

    public static func < (a: DriftFinding, b: DriftFinding) -> Bool {
        (a.cluster, a.kind.rawValue, a.object?.description ?? "") < (b.cluster, b.kind.rawValue, b.object?.description ?? "")
    }
}

/// One object a member holds, as read for a drift check.
public struct HeldObject: Sendable {
    /// The object, keys sorted; without its `spec` when `specJSON` holds it unread.
    public var value: Value
    /// The spec's JSON text as the member sent it: compared with the desired spec's canonical JSON as bytes,
    /// and read into values only when the bytes differ.
    public var specJSON: ArraySlice<UInt8>?

    public init(value: Value, specJSON: ArraySlice<UInt8>? = nil) {
        self.value = value
        self.specJSON = specJSON
    }

    /// The whole object, its spec read.
    public func whole() throws(JSONReader.Failure) -> Value {
        guard let specJSON, case .map(var entries) = value else { return value }
        let spec = try JSONReader.parse(Array(specJSON), sortingKeys: true)
        entries.removeAll { $0.key == "spec" }
        entries.append(Value.MapEntry("spec", spec))
        return Value.map(entries).canonical
    }
}

/// What a member holds, as read for a drift check.
public struct HeldObjects: Sendable {
    /// Objects labelled as managed by the hub.
    public var managed: [ObjectIdentity: HeldObject]
    /// NeuVector objects without the hub's label.
    public var unmanaged: [ObjectIdentity]
    /// Objects that could not be read as NeuVector objects, with the reason.
    public var unreadable: [(ObjectIdentity, String)]
    /// Objects listed under names that are not Kubernetes names: reported, never acted on.
    public var refused: [ListedNameProblem]

    public init(managed: [ObjectIdentity: HeldObject], unmanaged: [ObjectIdentity], unreadable: [(ObjectIdentity, String)] = [],
                refused: [ListedNameProblem] = []) {
        self.managed = managed
        self.unmanaged = unmanaged
        self.unreadable = unreadable
        self.refused = refused
    }
}

/// The compact canonical JSON of each desired spec, made once per distinct spec (by its hash) for a whole
/// report, so that a live spec sent in the same form is compared as bytes.
public struct DesiredSpecs: Sendable {
    private var json: [String: [UInt8]] = [:]

    public init(_ objects: some Sequence<RenderedObject>) {
        for object in objects where json[object.hash] == nil {
            json[object.hash] = JSONWriter.compactBytes(object.value["spec"] ?? .null)
        }
    }

    public func json(of object: RenderedObject) -> [UInt8] {
        json[object.hash] ?? JSONWriter.compactBytes(object.value["spec"] ?? .null)
    }
}

public enum DriftComparison {
    /// The parts of an object a push sets, less what changes with every revision (the revision and hash
    /// annotations) and what the server adds.
    public static func comparable(_ value: Value) -> Value {
        var map = ValueMapBuilder()
        map.set("kind", value["kind"])
        var meta = ValueMapBuilder()
        meta.set("labels", value["metadata"]?["labels"])
        if case .map(let annotations)? = value["metadata"]?["annotations"] {
            meta.set("annotations", .map(annotations.filter { $0.key != HubAnnotation.revision && $0.key != HubAnnotation.hash }))
        }
        map.set("metadata", meta.value)
        map.set("spec", value["spec"])
        return map.value.canonical
    }

    /// Whether `live` holds the kind, spec, labels and annotations (but the revision) of `sent` exactly,
    /// mappings in the same order (both canonical): `comparable` of both would be equal, found without
    /// building either. False says nothing: compare `comparable` of both then.
    public static func sameAsSent(_ sent: Value, _ live: Value) -> Bool {
        sent["kind"] == live["kind"] && sent["spec"] == live["spec"] && sameMetadataAsPushed(sent, live)
    }

    /// Whether a live object carries the labels and annotations (but the revision) the hub pushed.
    static func sameMetadataAsPushed(_ desired: Value, _ live: Value) -> Bool {
        let wanted = desired["metadata"], held = live["metadata"]
        guard wanted?["labels"] == held?["labels"] else { return false }
        guard case .map(let a)? = wanted?["annotations"], case .map(let b)? = held?["annotations"] else {
            return wanted?["annotations"] == held?["annotations"]
        }
        // both sorted: walk them side by side past the revision annotation (no filtered copies)
        var i = a.startIndex, j = b.startIndex
        while true {
            while i < a.endIndex, a[i].key == HubAnnotation.revision { i += 1 }
            while j < b.endIndex, b[j].key == HubAnnotation.revision { j += 1 }
            guard i < a.endIndex, j < b.endIndex else { return i == a.endIndex && j == b.endIndex }
            guard a[i] == b[j] else { return false }
            i += 1
            j += 1
        }
    }

    /// Whether a held object carries exactly the spec, labels and annotations (but the revision) the hub pushed:
    /// a spec kept as JSON text is compared as bytes with the desired canonical JSON, so the common case reads
    /// no spec at all. False (read the whole object and compare values) when the bytes differ in any way.
    static func sameAsPushed(_ desired: RenderedObject, _ held: HeldObject, specs: DesiredSpecs) -> Bool {
        if let specJSON = held.specJSON {
            guard bytesEqual(specJSON, specs.json(of: desired)) else { return false }
        } else if desired.value["spec"] != held.value["spec"] {
            return false
        }
        return sameMetadataAsPushed(desired.value, held.value)
    }

    /// Missing, modified, extra and unmanaged findings of one cluster. `specs` holds the desired specs' JSON
    /// (made once per report); without it each spec is written here.
    public static func compare(cluster: String, desired: [RenderedObject], held: HeldObjects,
                               specs: DesiredSpecs? = nil) -> [DriftFinding] {
        let specs = specs ?? DesiredSpecs(desired)
        var findings: [DriftFinding] = []
        let unreadable = Dictionary(held.unreadable, uniquingKeysWith: { a, _ in a })
        func notNeuVector(_ identity: ObjectIdentity, _ reason: String) {
            findings.append(DriftFinding(cluster: cluster, kind: .modified, object: identity, fields: ["(whole object)"],
                                         message: "the live object is not valid NeuVector YAML: \(reason)"))
        }
        for object in desired {
            if let reason = unreadable[object.identity] {
                notNeuVector(object.identity, reason)
                continue
            }
            guard let held = held.managed[object.identity] else {
                findings.append(DriftFinding(cluster: cluster, kind: .missing, object: object.identity,
                                             message: "desired but not on the member"))
                continue
            }
            if sameAsPushed(object, held, specs: specs) { continue }  // the common case, without building comparable forms
            let live: Value
            do {
                live = try held.whole()
            } catch {
                notNeuVector(object.identity, "spec: \(error.message) at byte \(error.offset)")
                continue
            }
            let changes = ValueDiff.changes(from: comparable(object.value), to: comparable(live))
            if !changes.isEmpty {
                findings.append(DriftFinding(cluster: cluster, kind: .modified, object: object.identity,
                                             fields: changes.map(\.path),
                                             message: changes.map { "\($0.path): hub \(ValueDiff.shortText($0.old)), member \(ValueDiff.shortText($0.new))" }
                                                 .joined(separator: "; ")))
            }
        }
        let desiredIdentities = Set(desired.map(\.identity))
        for identity in held.managed.keys.filter({ !desiredIdentities.contains($0) }).sorted() {
            findings.append(DriftFinding(cluster: cluster, kind: .extra, object: identity,
                                         message: "labelled as managed by the hub but not desired"))
        }
        for identity in held.unmanaged.sorted() {
            findings.append(DriftFinding(cluster: cluster, kind: .unmanaged, object: identity,
                                         message: "a NeuVector object the hub does not manage (reported, never touched)"))
        }
        for problem in held.refused.prefix(maxFindingsPerCluster) {
            findings.append(DriftFinding(cluster: cluster, kind: .unmanaged, object: nil, message: problem.description))
        }
        return bounded(findings.sorted(), cluster: cluster)
    }

    /// The most findings one cluster's report lists; beyond it, one finding per class says how many more.
    public static let maxFindingsPerCluster = 1000

    /// At most `maxFindingsPerCluster` findings (sorted), then one line per class counting the rest, so that
    /// a member listing a million objects gives a report of bounded size.
    static func bounded(_ findings: [DriftFinding], cluster: String) -> [DriftFinding] {
        guard findings.count > maxFindingsPerCluster else { return findings }
        var kept = Array(findings.prefix(maxFindingsPerCluster))
        var left: [DriftClass: Int] = [:]
        for finding in findings.dropFirst(maxFindingsPerCluster) { left[finding.kind, default: 0] += 1 }
        for kind in DriftClass.allCases {
            guard let count = left[kind] else { continue }
            kept.append(DriftFinding(cluster: cluster, kind: kind, object: nil,
                                     message: "\(count) more \(kind.rawValue) finding\(count == 1 ? "" : "s") not listed: a report lists at most \(maxFindingsPerCluster) per cluster"))
        }
        return kept
    }
}

extension ValueDiff {
    /// A value in a finding's message, or `absent`.
    public static func shortText(_ value: Value?) -> String {
        value.map(short) ?? "absent"
    }
}
