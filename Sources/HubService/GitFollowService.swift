import Crypto
import Foundation
import HubEngine
import Logging
import PolicyCore
import ServiceLifecycle

/// Follows the repository's branch (`repository: {url, branch, pollInterval}` in hub.yaml): a sync at start,
/// one every `pollInterval`, and one at once when `trigger()` is called (a push event on
/// `POST /v1/hooks/git`). Syncs never overlap; triggers during a sync make one more after it.
public actor GitFollowService: Service {
    let operations: any HubOperations
    let pollInterval: Double
    let metrics: HubMetrics
    let logger: Logger
    /// Called with each rejected commit's JSON (the webhook).
    let onRejected: @Sendable (Value) async -> Void
    private var wake: CheckedContinuation<Void, Never>?
    private var pending = false
    /// Syncs finished so far (tests read it).
    public private(set) var syncs = 0

    public init(operations: any HubOperations, pollInterval: Double, metrics: HubMetrics, logger: Logger,
                onRejected: @escaping @Sendable (Value) async -> Void) {
        self.operations = operations
        self.pollInterval = pollInterval
        self.metrics = metrics
        self.logger = logger
        self.onRejected = onRejected
    }

    /// Asks for a sync now (coalesced with one already asked for).
    public func trigger() {
        pending = true
        wake?.resume()
        wake = nil
    }

    public func run() async throws {
        let interval = pollInterval
        let ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
                await self?.trigger()
            }
        }
        defer { ticker.cancel() }
        pending = true  // a sync at start
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if pending {
                pending = false
                await sync()
                continue
            }
            await cancelWhenGracefulShutdown { [weak self] in await self?.waitForTrigger() }
        }
    }

    private func waitForTrigger() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                self.park(continuation)
            }
        } onCancel: {
            Task { await self.trigger() }
        }
    }

    private func park(_ continuation: CheckedContinuation<Void, Never>) {
        if pending || Task.isCancelled {
            continuation.resume()
        } else {
            wake = continuation
        }
    }

    private func sync() async {
        do throws(OperationError) {
            guard let run = try await operations.followBranch() else { return }
            syncs += 1
            metrics.increment("policyhub_git_syncs_total", labels: [("result", "ok")])
            for step in run.steps {
                metrics.increment("policyhub_git_commits_total", labels: [("result", step.accepted ? "accepted" : "rejected")])
                if !step.accepted { await onRejected(GitFollowService.rejection(step)) }
            }
        } catch {
            syncs += 1
            metrics.increment("policyhub_git_syncs_total", labels: [("result", "failed")])
            logger.warning("policyhub: following the repository failed: \(error.message)")
        }
    }

    /// The webhook's body for a rejected commit.
    static func rejection(_ step: FollowRun.Step) -> Value {
        var map = ValueMapBuilder()
        map.set("event", .string("commit-rejected"))
        map.set("commit", step.commit.value)
        map.set("errors", .list(step.errors.map(Value.string)))
        return map.value
    }
}

/// `POST /v1/hooks/git`: a push event from GitHub (or Gitea, Forgejo: `X-Hub-Signature-256: sha256=HMAC`) or
/// GitLab (`X-Gitlab-Token`, or the same HMAC header), checked against the secret in constant time; a push to
/// the followed branch makes the daemon fetch at once. Replaying a delivery is harmless: a fetch that finds
/// nothing new changes nothing.
public struct GitHook: Sendable {
    public let branch: String
    let secret: [UInt8]
    public let trigger: @Sendable () async -> Void

    /// `secret` from the environment variable hub.yaml names (never from hub.yaml itself).
    public init(branch: String, secret: String, trigger: @escaping @Sendable () async -> Void) {
        self.branch = branch
        self.secret = Array(secret.utf8)
        self.trigger = trigger
    }

    /// Whether the request carries the secret: an HMAC-SHA256 of the body, or GitLab's token.
    func authentic(body: [UInt8], signature: String?, gitlabToken: String?) -> Bool {
        if let signature, signature.hasPrefix("sha256=") {
            let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: secret))
            let expected = Array(("sha256=" + mac.map { String(format: "%02x", $0) }.joined()).utf8)
            return TokenFile.constantTimeEqual(expected, Array(signature.lowercased().utf8))
        }
        if let gitlabToken { return TokenFile.constantTimeEqual(secret, Array(gitlabToken.utf8)) }
        return false
    }

    /// The branch a push event names (`ref: refs/heads/NAME` in both GitHub's and GitLab's shapes); nil when
    /// the body is another event (a ping, a tag).
    static func pushedBranch(_ body: Value) -> String? {
        guard let ref = body["ref"]?.stringValue, ref.hasPrefix("refs/heads/") else { return nil }
        return String(ref.dropFirst("refs/heads/".count))
    }
}
