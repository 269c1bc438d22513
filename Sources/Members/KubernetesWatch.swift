import Foundation
import HubTransport
import PolicyCore

/// One change a Kubernetes watch reported about an object the hub manages.
public struct WatchEvent: Sendable {
    public enum Change: String, Sendable {
        case added = "ADDED", modified = "MODIFIED", deleted = "DELETED"
    }

    public var change: Change
    public var identity: ObjectIdentity
    /// The object as the event carries it, whole, keys sorted (for `deleted`, its last state).
    public var object: Value

    public init(change: Change, identity: ObjectIdentity, object: Value) {
        self.change = change
        self.identity = identity
        self.object = object
    }
}

/// How one watch request ended.
public enum WatchEnd: Sendable, Equatable {
    /// The server closed the stream (its `timeoutSeconds` ran out); the watch resumes from this resourceVersion.
    case closed(resourceVersion: String)
    /// 410 Gone, as an `ERROR` event or as the answer: the server's history no longer reaches the resourceVersion
    /// the watch asked for, so the objects are listed again.
    case expired(message: String)
    /// The request failed (connection, TLS, an error status, an unreadable event): resumed after a backoff.
    case failed(MemberError)
}

/// A labelled list of one kind, and the resourceVersion a watch of it starts from.
public struct WatchListing: Sendable {
    public var objects: [ObjectIdentity: Value]
    public var resourceVersion: String
}

/// What a watch does next, as a state machine (the driver executes its actions): list, watch from a
/// resourceVersion, or wait after a failure with a doubling backoff (client-go's reflector: re-list on 410,
/// resume from the last resourceVersion after a closed or broken stream).
public struct WatchCycle: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case list
        case watch(resourceVersion: String)
        case wait(seconds: Double)
    }

    enum State: Sendable, Equatable {
        case needsList
        case watching(String)
        case waiting(seconds: Double, then: Resume)
    }

    enum Resume: Sendable, Equatable {
        case list
        case watch(String)
    }

    var state: State = .needsList
    /// Failures in a row (reset by a list or a stream that delivered).
    public private(set) var failures = 0
    /// Between 0 and 1: spreads the reconnections of many clusters that failed at once.
    let jitter: Double
    public static let firstBackoff = 0.5
    public static let maxBackoff = 30.0
    /// A stream that ends sooner than this without delivering anything counts as a failure (no busy loop against
    /// a server that closes every watch at once).
    public static let shortestStream = 1.0

    public init(jitter: Double = 0) {
        self.jitter = min(1, max(0, jitter))
    }

    /// The action to take now. A `wait` moves on to what follows it.
    public mutating func next() -> Action {
        switch state {
        case .needsList: return .list
        case .watching(let version): return .watch(resourceVersion: version)
        case .waiting(let seconds, let then):
            switch then {
            case .list: state = .needsList
            case .watch(let version): state = .watching(version)
            }
            return .wait(seconds: seconds)
        }
    }

    /// The list succeeded: watch from its resourceVersion.
    public mutating func listed(resourceVersion: String) {
        failures = 0
        state = .watching(resourceVersion)
    }

    /// The list failed: list again after a backoff.
    public mutating func listFailed() {
        failures += 1
        state = .waiting(seconds: backoff(), then: .list)
    }

    /// The watch ended after `lasted` seconds, having delivered `delivered` events (bookmarks included).
    public mutating func ended(_ end: WatchEnd, from version: String, lasted: Double, delivered: Int) {
        switch end {
        case .closed(let resume):
            if lasted < WatchCycle.shortestStream && delivered == 0 {
                failures += 1
                state = .waiting(seconds: backoff(), then: .watch(resume))
            } else {
                failures = 0
                state = .watching(resume)
            }
        case .expired:
            state = .needsList
        case .failed:
            failures = delivered > 0 ? 1 : failures + 1
            state = .waiting(seconds: backoff(), then: .watch(version))
        }
    }

    func backoff() -> Double {
        let base = min(WatchCycle.maxBackoff, WatchCycle.firstBackoff * pow(2, Double(max(0, failures - 1))))
        return base * (1 + jitter * 0.5)
    }
}

/// Newline-delimited pieces of a stream, whatever its chunk boundaries (the API server ends each watch event
/// with a newline; chunks may split or join events).
struct LineSplitter {
    private var pending: [UInt8] = []
    let maxLine: Int

    init(maxLine: Int) {
        self.maxLine = maxLine
    }

    /// The complete lines `chunk` finishes; nil when a line grows past `maxLine` without ending.
    mutating func lines(adding chunk: [UInt8]) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        var start = chunk.startIndex
        while let newline = chunk[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending
            line.append(contentsOf: chunk[start..<newline])
            pending = []
            if !line.allSatisfy({ $0 == 0x20 || $0 == 0x0d || $0 == 0x09 }) { out.append(line) }
            start = newline + 1
        }
        pending.append(contentsOf: chunk[start...])
        return pending.count > maxLine ? nil : out
    }
}

extension KubernetesMember {
    /// The largest watch event read (NeuVector refuses objects over 512 KiB; a managed object is far smaller).
    public static let maxWatchEvent = 4 << 20

    /// The objects of `kind` labelled as managed by the hub, and the resourceVersion to watch them from.
    public func watchListing(_ kind: ObjectKind) async throws(MemberError) -> WatchListing {
        let (items, version) = try await listAllPages(kind, selector: KubernetesMember.selector)
        var objects: [ObjectIdentity: Value] = [:]
        for item in items {
            guard let name = item.value["metadata"]?["name"]?.stringValue,
                  case .success(let identity) = ObjectIdentity.listed(kind: kind, namespace: item.value["metadata"]?["namespace"]?.stringValue,
                                                                     name: name) else { continue }
            do {
                objects[identity] = try HeldObject(value: item.value, specJSON: item.kept).whole()
            } catch {
                throw MemberError(cluster: cluster, object: identity, message: "list \(kind.plural): its spec is not JSON (\(error.message))")
            }
        }
        guard let version, !version.isEmpty else {
            throw MemberError(cluster: cluster, message: "list \(kind.plural): the answer has no metadata.resourceVersion to watch from")
        }
        return WatchListing(objects: objects, resourceVersion: version)
    }

    /// Watches the managed objects of `kind` from `resourceVersion` (`?watch=1&allowWatchBookmarks=true`, the hub's
    /// label selector, `timeoutSeconds`): each change goes to `onEvent` in order; bookmarks move the resourceVersion
    /// on. Returns how the stream ended, the last resourceVersion seen, and the events delivered (bookmarks included).
    public func watch(_ kind: ObjectKind, from resourceVersion: String, timeoutSeconds: Int,
                      onEvent: @escaping @Sendable (WatchEvent) async -> Void) async -> (end: WatchEnd, delivered: Int) {
        let query = "?watch=1&allowWatchBookmarks=true&labelSelector=\(KubernetesMember.selector)"
            + "&resourceVersion=\(RequestURL.segment(resourceVersion))&timeoutSeconds=\(timeoutSeconds)"
        var request = self.request("GET", "/apis/neuvector.com/v1/\(kind.plural)\(query)")
        request.deadline = Date().timeIntervalSince1970 + Double(timeoutSeconds) + 30
        var tls = endpoint.tls
        if let plugin = endpoint.exec {
            do throws(MemberError) {
                let credential = try await credentials.credential(for: plugin, server: endpoint.server, cluster: cluster, settings: exec)
                request = authorized(request, credential)
                tls = self.tls(credential)
            } catch {
                return (.failed(error), 0)
            }
        }
        let (chunks, feed) = AsyncStream.makeStream(of: [UInt8].self)
        let transport = self.transport
        let sent = request
        let sentTLS = tls
        let member = self
        enum Part: Sendable {
            case transfer(Result<HTTPResponse, TransportError>)
            case events(end: WatchEnd?, version: String, delivered: Int)
        }
        return await withTaskGroup(of: Part.self) { group in
            group.addTask {
                let result = await transport.stream(sent, tls: sentTLS) { feed.yield($0) }
                feed.finish()
                return .transfer(result)
            }
            group.addTask {
                var splitter = LineSplitter(maxLine: KubernetesMember.maxWatchEvent)
                var version = resourceVersion
                var delivered = 0
                for await chunk in chunks {
                    guard let lines = splitter.lines(adding: chunk) else {
                        return .events(end: .failed(MemberError(cluster: member.cluster, message: "watch \(kind.plural): an event is larger than \(KubernetesMember.maxWatchEvent >> 20) MiB")),
                                       version: version, delivered: delivered)
                    }
                    for line in lines {
                        switch member.watchEvent(line, kind: kind) {
                        case .end(let end): return .events(end: end, version: version, delivered: delivered)
                        case .event(let event, let seen):
                            delivered += 1
                            if let seen { version = seen }
                            if let event { await onEvent(event) }
                        }
                    }
                }
                return .events(end: nil, version: version, delivered: delivered)
            }
            var transfer: Result<HTTPResponse, TransportError>?
            var stopped: WatchEnd?
            var version = resourceVersion
            var delivered = 0
            for await part in group {
                switch part {
                case .transfer(let result): transfer = result
                case .events(let end, let seen, let count):
                    version = seen
                    delivered = count
                    if let end {
                        stopped = end
                        group.cancelAll()  // the stream is of no more use: end the transfer
                    }
                }
            }
            if let stopped { return (stopped, delivered) }
            switch transfer {
            case .success(let response) where response.status == 200: return (.closed(resourceVersion: version), delivered)
            case .success(let response) where response.status == 410:
                return (.expired(message: member.failure(response, object: nil, doing: "watch \(kind.plural)").message), delivered)
            case .success(let response): return (.failed(member.failure(response, object: nil, doing: "watch \(kind.plural)")), delivered)
            case .failure(let error): return (.failed(MemberError(cluster: member.cluster, message: "watch \(kind.plural): \(error)")), delivered)
            case nil: return (.failed(MemberError(cluster: member.cluster, message: "watch \(kind.plural): the stream ended without an answer")), delivered)
            }
        }
    }

    /// One line of a watch stream: the change it reports (nil for a bookmark or an object under a name the hub
    /// refuses to act on) and the resourceVersion it carries, or how it ends the watch (410, another ERROR, junk).
    func watchEvent(_ line: [UInt8], kind: ObjectKind) -> WatchLine {
        let what = "watch \(kind.plural)"
        guard let event = try? JSONReader.parse(line, sortingKeys: true), let type = event["type"]?.stringValue,
              let object = event["object"] else {
            return .end(.failed(MemberError(cluster: cluster, message: "\(what): an event is not a watch event: \(String(decoding: line.prefix(120), as: UTF8.self))")))
        }
        let version = object["metadata"]?["resourceVersion"]?.stringValue
        switch type {
        case "BOOKMARK":
            return .event(nil, version)
        case "ERROR":
            let message = object["message"]?.stringValue ?? "no message"
            if case .int(410)? = object["code"] { return .end(.expired(message: message)) }
            return .end(.failed(MemberError(cluster: cluster, message: "\(what): the server ended the watch: \(message)")))
        default:
            guard let change = WatchEvent.Change(rawValue: type) else {
                return .end(.failed(MemberError(cluster: cluster, message: "\(what): an event of unknown type \(type)")))
            }
            guard let name = object["metadata"]?["name"]?.stringValue,
                  case .success(let identity) = ObjectIdentity.listed(kind: kind, namespace: object["metadata"]?["namespace"]?.stringValue, name: name) else {
                return .event(nil, version)
            }
            return .event(WatchEvent(change: change, identity: identity, object: object.canonical), version)
        }
    }
}

/// What one line of a watch stream says.
enum WatchLine {
    /// A change (nil: a bookmark, or an object under a name the hub refuses) and the resourceVersion it carries.
    case event(WatchEvent?, String?)
    /// The line ends the watch.
    case end(WatchEnd)
}
