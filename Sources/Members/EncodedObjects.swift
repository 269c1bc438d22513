import Foundation
import PolicyCore
import PolicyYAML

/// The encoded bodies of pushed objects, shared by every member of the process. Clusters of one placement
/// class get the same objects, and encoding each again for every cluster was the largest part of a push's CPU
/// (a one-document change to 1,000 GitOps folders wrote its YAML 4,000 times).
///
/// An entry is keyed by what fixes every byte of the object: its applied hash (SHA-256 of the whole object,
/// keys sorted, less its revision annotation), that annotation, and the format. The cache forgets everything
/// when it holds more than `limit` bytes (a first push of a large fleet's distinct objects), so it never grows
/// without bound.
public final class EncodedObjects: @unchecked Sendable {
    public enum Format: UInt8, Sendable {
        /// `YAMLWriter.document`: a GitOps folder's file.
        case yaml
        /// `JSONWriter.compactBytes`: a server-side apply body.
        case json
    }

    struct Key: Hashable {
        let hash: String
        let revision: String
        let format: Format
    }

    public static let shared = EncodedObjects(limit: 64 << 20)

    let limit: Int
    private let lock = NSLock()
    private var entries: [Key: [UInt8]] = [:]
    private var held = 0

    public init(limit: Int) {
        self.limit = limit
    }

    /// The bytes of `object` in `format`; `hash` must be the object's `appliedHash` (what the push plan computed
    /// once per placement class).
    public func bytes(of object: RenderedObject, hash: String, format: Format) -> [UInt8] {
        let revision = object.value["metadata"]?["annotations"]?[HubAnnotation.revision]?.stringValue ?? ""
        let key = Key(hash: hash, revision: revision, format: format)
        if let bytes = lock.withLock({ entries[key] }) { return bytes }
        let bytes: [UInt8]
        switch format {
        case .yaml: bytes = Array(YAMLWriter.document(object.value).utf8)
        case .json: bytes = JSONWriter.compactBytes(object.value)
        }
        lock.withLock {
            if held + bytes.count > limit {
                entries.removeAll(keepingCapacity: true)
                held = 0
            }
            if entries.updateValue(bytes, forKey: key) == nil { held += bytes.count }
        }
        return bytes
    }

    /// How many encodings are held (for tests).
    var count: Int { lock.withLock { entries.count } }
}
