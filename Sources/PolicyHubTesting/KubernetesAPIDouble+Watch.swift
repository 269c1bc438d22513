import Foundation
import NIOCore
import NIOHTTP1
import PolicyCore

/// One change kept for watches to resume over.
struct WatchRecord {
    var resourceVersion: Int
    var type: String
    var identity: ObjectIdentity
    /// The object after the change (for a deletion: its last state).
    var value: Value
    var json: [UInt8]
    /// The object before the change (nil for a creation).
    var before: Value?
}

/// A watch the double serves: what it asks for, and the events for it, buffered until its connection takes them.
/// Guarded by its own lock (events come from the double's lock, sends go out on the connection's event loop).
final class Watcher: @unchecked Sendable {
    let id: Int
    let kind: ObjectKind
    let namespace: String?
    let selector: LabelSelector
    let bookmarks: Bool
    let timeout: TimeAmount
    /// The User-Agent it was asked with (which replica of the hub watches).
    let agent: String
    private let lock = NSLock()
    private var pending: [[UInt8]] = []
    private var sender: (@Sendable ([UInt8]) -> Void)?
    private var closer: (@Sendable () -> Void)?
    private var closed = false
    private var dropped = false

    init(id: Int, kind: ObjectKind, namespace: String?, selector: LabelSelector, bookmarks: Bool, timeout: TimeAmount, agent: String = "") {
        self.id = id
        self.agent = agent
        self.kind = kind
        self.namespace = namespace
        self.selector = selector
        self.bookmarks = bookmarks
        self.timeout = timeout
    }

    /// Whether the watch asks for this object (kind, namespace, label selector).
    func wants(_ identity: ObjectIdentity, _ value: Value?) -> Bool {
        guard let value, identity.kind == kind, namespace == nil || identity.namespace == namespace else { return false }
        var labels: [String: String] = [:]
        if case .map(let entries)? = value["metadata"]?["labels"] {
            for entry in entries { labels[entry.key] = entry.value.stringValue }
        }
        return selector.matches(labels)
    }

    /// Queues one event line (sent at once when the connection is attached).
    func deliver(_ line: [UInt8]) {
        lock.lock()
        guard !closed else {
            lock.unlock()
            return
        }
        guard let sender else {
            pending.append(line)
            lock.unlock()
            return
        }
        lock.unlock()
        sender(line)
    }

    /// The connection takes over: what was buffered is sent first.
    func attach(send: @escaping @Sendable ([UInt8]) -> Void, close: @escaping @Sendable () -> Void) {
        lock.lock()
        let buffered = pending
        pending = []
        sender = send
        closer = close
        let dropped = self.dropped
        lock.unlock()
        if dropped {
            close()  // dropped before its connection took over
            return
        }
        for line in buffered { send(line) }
    }

    /// Ends the stream by closing its connection (a dropped watch).
    func drop() {
        lock.lock()
        let close = closer
        closed = true
        dropped = true
        lock.unlock()
        close?()
    }

    func detach() {
        lock.lock()
        closed = true
        sender = nil
        closer = nil
        lock.unlock()
    }
}

extension KubernetesAPIDouble {
    /// The most changes a virtual cluster keeps for watches; older ones are compacted away (a watch from before
    /// them gets 410 Gone).
    static let historyLimit = 2000

    /// Seconds between bookmarks on watches that allow them (the API server sends one about every minute).
    public var bookmarkInterval: Double {
        get {
            lock.lock()
            defer { lock.unlock() }
            return bookmarkSeconds
        }
        set {
            lock.lock()
            bookmarkSeconds = newValue
            lock.unlock()
        }
    }

    /// Records a change of one object (called with the lock held, `resourceVersion` already moved on) and sends it
    /// to the watches that ask for it: a change that makes an object match a watch's selector is ADDED for it, one
    /// that makes it stop matching is DELETED, as the API server filters.
    func changed(_ identity: ObjectIdentity, from old: Stored?, to new: Stored?, cluster: VirtualCluster) {
        let version = resourceVersion
        let value = new?.value ?? KubernetesAPIDouble.settingResourceVersion(old?.value ?? .null, version)
        let json = new?.json ?? JSONWriter.compactBytes(value)
        let type = new == nil ? "DELETED" : (old == nil ? "ADDED" : "MODIFIED")
        let record = WatchRecord(resourceVersion: version, type: type, identity: identity, value: value, json: json, before: old?.value)
        cluster.history.append(record)
        if cluster.history.count > KubernetesAPIDouble.historyLimit {
            let dropped = cluster.history.count - KubernetesAPIDouble.historyLimit
            cluster.historyFloor = cluster.history[dropped - 1].resourceVersion
            cluster.history.removeFirst(dropped)
        }
        for watcher in cluster.watchers.values {
            if let line = KubernetesAPIDouble.eventLine(record, for: watcher) { watcher.deliver(line) }
        }
    }

    /// The line a watcher gets for a change, nil when the change is none of its business.
    static func eventLine(_ record: WatchRecord, for watcher: Watcher) -> [UInt8]? {
        let before = watcher.wants(record.identity, record.before)
        let after = record.type != "DELETED" && watcher.wants(record.identity, record.value)
        let type: String
        switch (before, after) {
        case (false, false): return nil
        case (false, true): type = "ADDED"
        case (true, false): type = "DELETED"
        case (true, true): type = record.type
        }
        return Array("{\"type\":\"\(type)\",\"object\":".utf8) + record.json + Array("}\n".utf8)
    }

    /// `value` with `metadata.resourceVersion` set.
    static func settingResourceVersion(_ value: Value, _ version: Int) -> Value {
        guard case .map(var entries) = value else { return value }
        var meta: [Value.MapEntry] = []
        if let index = entries.firstIndex(where: { $0.key == "metadata" }), case .map(let given) = entries[index].value {
            meta = given.filter { $0.key != "resourceVersion" }
            entries.remove(at: index)
        }
        meta.append(Value.MapEntry("resourceVersion", .string(String(version))))
        entries.append(Value.MapEntry("metadata", .map(meta)))
        return Value.map(entries).canonical
    }

    /// A watch (`?watch=1`): from `resourceVersion` (unset or "0": every matching object as ADDED first), the changes
    /// after it from the history, then live ones; 410 Gone as an ERROR event when the history no longer reaches
    /// back that far; bookmarks when `allowWatchBookmarks=true`; closed after `timeoutSeconds`. Lock held.
    func watch(kind: ObjectKind, namespace: String?, parameters: [String: String], cluster: VirtualCluster, agent: String) -> Answer {
        let selector = parameters["labelSelector"].flatMap { try? LabelSelector.parse($0) } ?? .everything
        let timeout = parameters["timeoutSeconds"].flatMap(Int.init).map { TimeAmount.seconds(Int64($0)) } ?? .minutes(30)
        watcherCounter += 1
        let watcher = Watcher(id: watcherCounter, kind: kind, namespace: namespace, selector: selector,
                              bookmarks: parameters["allowWatchBookmarks"] == "true", timeout: timeout, agent: agent)
        let from = parameters["resourceVersion"].flatMap(Int.init) ?? 0
        if from == 0 {
            for (identity, stored) in cluster.objects.sorted(by: { $0.key < $1.key }) where watcher.wants(identity, stored.value) {
                watcher.deliver(Array("{\"type\":\"ADDED\",\"object\":".utf8) + stored.json + Array("}\n".utf8))
            }
        } else if from < cluster.historyFloor {
            let status = KubernetesAPIDouble.statusBody(410, reason: "Expired", message: "too old resource version: \(from) (\(cluster.historyFloor))")
            watcher.deliver(Array("{\"type\":\"ERROR\",\"object\":".utf8) + JSONWriter.compactBytes(status) + Array("}\n".utf8))
            return .watch(watcher)  // not registered: the stream ends after the error
        } else {
            for record in cluster.history where record.resourceVersion > from {
                if let line = KubernetesAPIDouble.eventLine(record, for: watcher) { watcher.deliver(line) }
            }
        }
        cluster.watchers[watcher.id] = watcher
        watchersByID[watcher.id] = cluster
        return .watch(watcher)
    }

    /// Forgets a watch whose connection ended.
    func unregister(_ watcher: Watcher) {
        lock.lock()
        defer { lock.unlock() }
        watchersByID.removeValue(forKey: watcher.id)?.watchers[watcher.id] = nil
    }

    /// The line of a bookmark at the current resourceVersion.
    func bookmarkLine(_ kind: ObjectKind) -> [UInt8] {
        lock.lock()
        let version = resourceVersion
        lock.unlock()
        return Array("{\"type\":\"BOOKMARK\",\"object\":{\"apiVersion\":\"neuvector.com/v1\",\"kind\":\"\(kind.rawValue)\",\"metadata\":{\"resourceVersion\":\"\(version)\"}}}\n".utf8)
    }

    /// Closes every watch connection of a virtual cluster, as a restarting API server or a broken network does.
    public func dropWatches(cluster name: String) {
        lock.lock()
        let watchers = Array(virtual(name).watchers.values)
        lock.unlock()
        for watcher in watchers { watcher.drop() }
    }

    /// Compacts a virtual cluster's history: a watch resumed from any resourceVersion seen so far gets 410 Gone.
    public func compactHistory(cluster name: String) {
        lock.lock()
        defer { lock.unlock() }
        let cluster = virtual(name)
        cluster.history = []
        resourceVersion += 1
        cluster.historyFloor = resourceVersion
    }

    /// Watches being served now, on one virtual cluster or (nil) on all.
    public func activeWatches(cluster name: String? = nil) -> Int {
        lock.lock()
        defer { lock.unlock() }
        guard let name else { return watchersByID.count }
        return clusters[name]?.watchers.count ?? 0
    }

    /// The User-Agents of the watches open on a cluster (which replicas watch it), one entry per watch.
    public func watchAgents(cluster name: String) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return clusters[name]?.watchers.values.map(\.agent) ?? []
    }
}

extension DoubleHandler {
    /// Streams a watch on this connection: the head, then each event as a chunk, a bookmark every so often, the
    /// end after the watch's timeout; the watch is forgotten when the connection goes.
    func serve(_ watcher: Watcher, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Audit-Id", value: UUID().uuidString.lowercased())
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let loop = context.eventLoop
        let bound = NIOLoopBound(context, eventLoop: loop)
        let handler = NIOLoopBound(self, eventLoop: loop)
        let double = self.double
        // once the stream's end is written, nothing more goes out on it (the connection may carry the next request)
        let ended = NIOLoopBound(StreamEnd(), eventLoop: loop)
        @Sendable func write(_ line: [UInt8]) {
            loop.execute {
                let context = bound.value
                guard context.channel.isActive, !ended.value.done else { return }
                let part = handler.value.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: line))))
                context.writeAndFlush(part, promise: nil)
            }
        }
        @Sendable func end() {
            loop.execute {
                let context = bound.value
                guard context.channel.isActive, !ended.value.done else { return }
                ended.value.done = true
                context.writeAndFlush(handler.value.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
        let expired = loop.scheduleTask(in: watcher.timeout) {
            watcher.detach()
            double.unregister(watcher)
            end()
        }
        var bookmark: RepeatedTask?
        if watcher.bookmarks {
            let every = TimeAmount.nanoseconds(Int64(double.bookmarkInterval * 1e9))
            bookmark = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in write(double.bookmarkLine(watcher.kind)) }
        }
        let repeating = bookmark.map { NIOLoopBound($0, eventLoop: loop) }
        context.channel.closeFuture.whenComplete { _ in
            expired.cancel()
            repeating?.value.cancel()
            watcher.detach()
            double.unregister(watcher)
        }
        watcher.attach(send: write, close: { loop.execute { bound.value.close(promise: nil) } })
        if double.activeWatchIDs(contains: watcher.id) == false {
            // an answer that ends at once (410 Gone): what was buffered is out, now the end
            watcher.detach()
            end()
        }
    }
}

extension KubernetesAPIDouble {
    func activeWatchIDs(contains id: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return watchersByID[id] != nil
    }
}

/// Whether a watch stream's end was written (touched on its connection's event loop only).
final class StreamEnd {
    var done = false
}
