import Foundation
import HubStore
import PolicyCore
import PolicyYAML

/// What a document write expects (per document: another team's edit is no conflict).
public enum DocumentPrecondition: Sendable, Hashable, CustomStringConvertible {
    /// The document is as it was in this root revision (`If-Match: r12`).
    case revision(Int64)
    /// The document's current ETag (`If-Match: "sha256:..."`, from a GET); `absent` for a document that
    /// must not exist yet.
    case etag(String)

    /// The ETag of a document with this content hash, or of no document.
    public static func etag(ofHash hash: String?) -> String { hash ?? "absent" }

    public var description: String {
        switch self {
        case .revision(let id): return "r\(id)"
        case .etag(let tag): return "ETag \"\(tag)\""
        }
    }
}

/// The outcome of a document write.
public struct DocumentWrite: Sendable {
    /// The root environment's revision after the write (the recorded one, or the one held when unchanged).
    public var revision: Revision?
    /// The repository file that holds the document.
    public var source: String
    /// The document's content hash after the write (nil after a removal).
    public var hash: String?
    /// True when the document was already held exactly so: nothing was recorded.
    public var unchanged: Bool
}

extension HubSession {
    /// The root environment's desired revision and its documents.
    public func rootDocuments() throws(EngineError) -> (Revision?, [StoredDocument]) {
        guard let root = fleet.root else { throw .failure("the fleet has no root environment") }
        let revision = try stored { () throws(HubStoreError) in try store.desiredRevision(environment: root.name) }
        guard let revision else { return (nil, []) }
        return (revision, try stored { () throws(HubStoreError) in try store.documents(revision: revision.id) })
    }

    /// Writes `yaml` as the new version of `identity` (nil: removes it) in the root environment: the
    /// document is validated on its own and in the tree, its repository file and a new revision change as
    /// one outcome under the state lock (which `apply` holds while it reads policies/ and records it).
    /// A document equal to the one held records nothing. With a `precondition`, a change of this document
    /// since (never of another one) is a conflict.
    /// With `branch` (the daemon follows one, checked out at the repository), the file's change is also a commit
    /// on it (author: `author`; committer: the hub; message: the route and the revision), pushed before the
    /// revision is recorded; a push refused because the branch moved is a conflict naming its new head, and
    /// nothing is committed or recorded.
    public func writeDocument(_ identity: ObjectIdentity, yaml: [UInt8]?, precondition: DocumentPrecondition?,
                              author: String, branch: String? = nil) throws(EngineError) -> DocumentWrite {
        // its file and commit never land in a checkout that holds a commit a sync has not accepted yet
        try CheckoutLock.exclusive(engine.root, timeout: 30) { () throws(EngineError) in
            try writeDocumentInCheckout(identity, yaml: yaml, precondition: precondition, author: author, branch: branch)
        }
    }

    private func writeDocumentInCheckout(_ identity: ObjectIdentity, yaml: [UInt8]?, precondition: DocumentPrecondition?,
                                         author: String, branch: String?) throws(EngineError) -> DocumentWrite {
        guard let rootEnvironment = fleet.root else { throw .failure("the fleet has no root environment") }
        let lock = try engine.lock(.state, timeout: 30)
        defer { withExtendedLifetime(lock) {} }
        let (current, documents) = try rootDocuments()
        var kept = documents.filter { $0.identity != identity }
        let existing = documents.first { $0.identity == identity }
        if let precondition {
            let expected: String?
            switch precondition {
            case .etag(let tag):
                expected = tag == "absent" ? nil : tag
            case .revision(let id):
                let then: [StoredDocument]
                do throws(HubStoreError) {
                    then = try store.documents(revision: id)
                } catch {
                    throw .conflict("If-Match names r\(id), which is not a revision of \(rootEnvironment.name)", current: current?.id)
                }
                expected = then.first { $0.identity == identity }?.hash
            }
            if expected != existing?.hash {
                throw .conflict("\(identity) changed since \(precondition.description) (its ETag is now \"\(DocumentPrecondition.etag(ofHash: existing?.hash))\"); another change landed first",
                                current: current?.id)
            }
        }
        let source = existing?.source ?? (identity.kind.isNamespaced
            ? "policies/namespaces/\(identity.namespace)/\(identity.name).yaml" : "policies/global/\(identity.name).yaml")
        if let yaml {
            // the submitted document on its own: syntax, model and identity, located in the body
            let decoded = PolicyDecoder.decodeFile(yaml, file: "body")
            if decoded.diagnostics.contains(where: \.isError) {
                throw .invalid("the document is not valid", diagnostics: decoded.diagnostics)
            }
            guard decoded.objects.count == 1, let object = decoded.objects.first else {
                throw .invalid("the body must hold exactly one document (it holds \(decoded.objects.count))")
            }
            if object.identity != identity {
                throw .invalid("the body is \(object.identity), but the path names \(identity) (kind, metadata.namespace and metadata.name must match the path)")
            }
            let placed = PolicyDecoder.decodeFile(yaml, file: source).objects
            let validated = HubSession.validate(HubSession.objects(of: kept) + placed)
            guard let policy = validated.value else {
                // the submitted document's problems point at its own lines ("body:LINE:COL"); others name their files
                let located = validated.diagnostics.filter(\.isError).map { diagnostic -> Diagnostic in
                    var moved = diagnostic
                    if moved.location.file == source { moved.location.file = "body" }
                    return moved
                }
                throw .invalid("the tree with this document does not validate", diagnostics: located)
            }
            let ambiguous = AmbiguityCheck.problems(policy, fleet: fleet, parallel: .dispatch).map { diagnostic -> Diagnostic in
                var moved = diagnostic
                if moved.location.file == source { moved.location.file = "body" }
                return moved
            }
            if !ambiguous.isEmpty {
                throw .invalid("the tree with this document has an ambiguous conflict", diagnostics: ambiguous)
            }
            guard let document = policy.documents.first(where: { $0.object.identity == identity }) else {
                throw .failure("the validated tree lost \(identity)")
            }
            let storedDocument = StoredDocument(document)
            if let existing, existing.hash == storedDocument.hash {
                return DocumentWrite(revision: current, source: source, hash: existing.hash, unchanged: true)
            }
            kept.append(storedDocument)
        } else if existing == nil {
            throw .notFound("\(identity) is not in the root environment's revision")
        }
        _ = try signatureGate(rootEnvironment, commit: nil, what: "this document write")
        let cause = yaml == nil ? "api: remove \(identity)" : (existing == nil ? "api: add \(identity)" : "api: change \(identity)")
        let file = SourceFile(root: root, source: source)
        let previous = try file.edit(identity, yaml: yaml, documents: kept.filter { $0.source == source })
        let revision: Revision
        var committed: (tree: GitWorkTree, commit: String)?
        do throws(EngineError) {
            var provenance: CommitProvenance?
            if let branch {
                guard let tree = GitWorkTree.at(engine.root) else { throw .failure("the checkout of \(branch) is not a git work tree") }
                let next = try stored { () throws(HubStoreError) in try store.revisions(environment: nil).first?.id ?? 0 } + 1
                let route = identity.kind.isNamespaced ? "/v1/namespaces/\(identity.namespace)/documents/\(identity.kind.rawValue)/\(identity.name)"
                    : "/v1/documents/\(identity.kind.rawValue)/\(identity.name)"
                let id = try tree.commitAndPush(source, author: author, message: "\(yaml == nil ? "DELETE" : "PUT") \(route): r\(next)\n\n\(cause)",
                                                branch: branch)
                committed = (tree, id)
                provenance = try tree.commit(id, keys: engine.trustedKeys)
            }
            revision = try stored { () throws(HubStoreError) in
                try store.recordRevision(environment: rootEnvironment.name, documents: kept, author: author, cause: cause, at: now(),
                                         expectedParent: .mustBe(current?.id), commit: provenance)
            }
        } catch {
            // one outcome: no revision, so the file as it was (a commit already pushed is recorded by the next sync)
            if committed == nil { file.restore(previous, log: log) }
            throw error
        }
        if let committed { try committed.tree.markAccepted(committed.commit) }
        return DocumentWrite(revision: revision, source: source, hash: kept.first { $0.identity == identity }?.hash, unchanged: false)
    }
}

/// A policy file of the repository that an API write keeps in step with the recorded revision, so that
/// git and the next `policyhub apply` see the edit.
struct SourceFile {
    let root: String
    let source: String

    var path: String { (root as NSString).appendingPathComponent(source) }

    /// Writes the file to hold `documents` (removes it when none is left). Returns its previous bytes
    /// (nil: there was none); throws when the file could not be changed.
    func write(documents: [StoredDocument]) throws(EngineError) -> Data? {
        let previous = FileManager.default.contents(atPath: path)
        if documents.isEmpty {
            if previous != nil && unlink(path) != 0 {
                throw .failure("cannot remove \(source): \(String(cString: strerror(errno))); nothing was recorded")
            }
            return previous
        }
        var values: [Value] = []
        for document in documents.sorted(by: { $0.identity < $1.identity }) {
            guard let value = try? JSONReader.parse(Array(document.body.utf8)) else {
                throw .failure("the stored form of \(document.identity) cannot be read back; nothing was recorded")
            }
            values.append(value)
        }
        try replace(with: Data(YAMLWriter.documents(values).utf8))
        return previous
    }

    /// Changes only the document `identity` in the file, as written in `yaml` (nil: removes it), keeping every
    /// other byte (comments, layout, the other documents); a file it cannot edit so (a `kind: List`, a document
    /// it cannot find alone between `---` lines) is written whole from `documents`. Returns the previous bytes.
    func edit(_ identity: ObjectIdentity, yaml: [UInt8]?, documents: [StoredDocument]) throws(EngineError) -> Data? {
        guard let previous = FileManager.default.contents(atPath: path) else {
            if let yaml { try replace(with: Data(SourceFile.terminated(yaml))) }
            return nil
        }
        let segments = SourceFile.segments(Array(previous))
        let identities = segments.map { segment -> [ObjectIdentity] in
            PolicyDecoder.decodeFile(segment, file: source).objects.map(\.identity)
        }
        guard identities.allSatisfy({ $0.count <= 1 }), identities.filter({ $0.first == identity }).count <= 1 else {
            return try write(documents: documents)
        }
        var out: [UInt8] = []
        var found = false
        for (segment, held) in zip(segments, identities) {
            guard held.first == identity else {
                out += segment
                continue
            }
            found = true
            guard let yaml else { continue }
            // the segment's separator line and the comment lines that open it stay, unless the body brings its own
            let (separator, comments) = SourceFile.opening(segment)
            if !yaml.starts(with: Array("---".utf8)) { out += separator }
            if !(yaml.first == UInt8(ascii: "#")) { out += comments }
            out += SourceFile.terminated(yaml)
        }
        if !found, let yaml {
            if !out.isEmpty {
                out = SourceFile.terminated(out)
                if !yaml.starts(with: Array("---".utf8)) { out += Array("---\n".utf8) }
            }
            out += SourceFile.terminated(yaml)
        }
        let remaining = SourceFile.segments(out).contains { !PolicyDecoder.decodeFile($0, file: source).objects.isEmpty }
        if !remaining {
            guard unlink(path) == 0 else { throw .failure("cannot remove \(source): \(String(cString: strerror(errno))); nothing was recorded") }
            return previous
        }
        try replace(with: Data(out))
        return previous
    }

    /// The file cut before each line that starts with `---` (a document separator), each piece with its separator.
    static func segments(_ bytes: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var current: [UInt8] = []
        var lineStart = true
        var index = 0
        while index < bytes.count {
            if lineStart, bytes[index...].starts(with: Array("---".utf8)), !current.isEmpty {
                out.append(current)
                current = []
            }
            current.append(bytes[index])
            lineStart = bytes[index] == UInt8(ascii: "\n")
            index += 1
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// A segment's `---` line (empty when it has none) and the comment and blank lines right after it.
    static func opening(_ segment: [UInt8]) -> (separator: [UInt8], comments: [UInt8]) {
        let lines = segment.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { Array($0) + [UInt8(ascii: "\n")] }
        var index = 0
        var separator: [UInt8] = []
        if let first = lines.first, first.starts(with: Array("---".utf8)) {
            separator = first
            index = 1
        }
        var comments: [UInt8] = []
        while index < lines.count, lines[index].first == UInt8(ascii: "#") || lines[index] == [UInt8(ascii: "\n")] {
            comments += lines[index]
            index += 1
        }
        if index >= lines.count { comments = [] }  // a segment of comments only is not a document's opening
        return (separator, comments)
    }

    static func terminated(_ bytes: [UInt8]) -> [UInt8] {
        bytes.last == UInt8(ascii: "\n") || bytes.isEmpty ? bytes : bytes + [UInt8(ascii: "\n")]
    }

    /// Puts the file back as it was before `write` (best effort: the revision was not recorded).
    func restore(_ previous: Data?, log: EngineLog) {
        guard let previous else {
            unlink(path)
            return
        }
        do throws(EngineError) {
            try replace(with: previous)
        } catch {
            log.note("policyhub: \(error.message)")
        }
    }

    /// Writes `data` atomically (a temporary file beside it, then rename).
    func replace(with data: Data) throws(EngineError) {
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw .failure("cannot create the folder of \(source): \(error.localizedDescription); nothing was recorded")
        }
        let temporary = path + ".policyhub-tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw .failure("cannot write \(source) (\(temporary)); nothing was recorded")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .failure("cannot replace \(source): \(reason); nothing was recorded")
        }
    }
}
