import Foundation
import HubEngine
import HubTransport
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Members
import NIOCore
import NIOPosix
import NIOSSL
import PolicyCore
import ServiceLifecycle
import UnixSignals

/// `policyhub serve`: the API, the scheduler and the webhook, in one service group that shuts down
/// gracefully on SIGTERM and SIGINT.
public struct HubServer: Sendable {
    public let config: HubConfig
    public let operations: any HubOperations
    public let clock: any HubClock
    public let metrics = HubMetrics()
    public let logger: Logger

    /// The file `config` was read from: SIGHUP reads it again (nil: SIGHUP reads only the tokens file).
    public let configPath: String?

    public init(config: HubConfig, configPath: String? = nil, operations: any HubOperations, clock: any HubClock = SystemClock(),
                logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.operations = operations
        self.clock = clock
        self.logger = logger
    }

    /// What happens after every drift report: the findings gauge, and the webhook when there are new findings.
    /// Sends an event (a rejected commit) to the webhook, when one is configured.
    func notify(transport: CurlTransport?) -> @Sendable (Value) async -> Void {
        let metrics = self.metrics
        let logger = self.logger
        let webhook = self.webhook
        return { body in
            guard let webhook, let transport else { return }
            if let problem = await webhook.deliver(body, transport: transport) {
                metrics.increment("policyhub_webhook_deliveries_total", labels: [("result", "failed")])
                logger.warning("\(problem)")
            } else {
                metrics.increment("policyhub_webhook_deliveries_total", labels: [("result", "ok")])
            }
        }
    }

    /// The configured webhook (its token from the environment).
    var webhook: Webhook? {
        config.webhookURL.map { url in
            var tls = TLSSettings()
            tls.caFile = config.webhookCAFile
            let token = config.webhookTokenVariable.flatMap { ProcessInfo.processInfo.environment[$0] }
            return Webhook(url: url, tls: tls, bearerToken: token)
        }
    }

    func afterDriftReport(transport: CurlTransport?) -> @Sendable (DriftRun, String) async -> Void {
        let metrics = self.metrics
        let logger = self.logger
        let webhook = self.webhook
        let deliver = notify(transport: transport)
        return { run, trigger in
            metrics.increment("policyhub_drift_reports_total", labels: [("trigger", trigger)])
            metrics.set("policyhub_drift_findings", Double(run.driftFindings))
            for (cluster, findings) in run.findingsByCluster {
                metrics.set("policyhub_cluster_drift_findings", labels: [("cluster", cluster)], Double(findings))
            }
            guard run.newFindings > 0, webhook != nil else { return }
            _ = logger
            await deliver(Webhook.summary(of: run))
        }
    }

    /// SIGHUP: the tokens file and hub.yaml read again. The schedules apply at once; a setting that needs
    /// the listening socket, the store or the repository again is named as taking effect at the next start.
    /// A hub.yaml that does not read is logged and the running configuration kept.
    func reload(tokens: TokenSource, scheduler: SchedulerService) async {
        if let problem = tokens.reload() {
            logger.error("SIGHUP: the tokens file was not read again: \(problem.description)")
        } else {
            logger.info("SIGHUP: tokens file \(tokens.path) read again")
        }
        guard let configPath else { return }
        let fresh: HubConfig
        do {
            fresh = try HubConfig.load(path: configPath)
        } catch {
            logger.error("SIGHUP: \(configPath) was not read again, the running configuration stays: \(error.description)")
            return
        }
        let restartOnly = HubServer.restartOnlyChanges(from: config, to: fresh)
        if !restartOnly.isEmpty {
            logger.warning("SIGHUP: \(restartOnly.joined(separator: ", ")) changed in \(configPath); that takes effect at the next start")
        }
        await scheduler.reschedule(Schedule(drift: fresh.driftSchedule, reconcileInterval: fresh.reconcileInterval,
                                              selfHealInterval: fresh.selfHealInterval))
        logger.info("SIGHUP: \(configPath) read again; schedules: drift report \(fresh.driftSchedule?.description ?? "off"), reconcile \(fresh.reconcileInterval.map { "every \(Int($0)) s" } ?? "off")")
    }

    /// The settings of hub.yaml that differ between `old` and `new` and apply only at start.
    static func restartOnlyChanges(from old: HubConfig, to new: HubConfig) -> [String] {
        var changed: [String] = []
        if old.host != new.host || old.port != new.port { changed.append("listen") }
        if old.tlsCertificate != new.tlsCertificate || old.tlsKey != new.tlsKey { changed.append("tls") }
        if old.statePath != new.statePath { changed.append("state") }
        if old.repository != new.repository || old.followed != new.followed || old.pollInterval != new.pollInterval
            || old.gitWebhookSecretVariable != new.gitWebhookSecretVariable { changed.append("repository") }
        if old.tokensPath != new.tokensPath { changed.append("tokens") }
        if old.maxBodyBytes != new.maxBodyBytes { changed.append("maxBodyBytes") }
        if old.idleTimeout != new.idleTimeout { changed.append("idleTimeout") }
        if old.maxConnections != new.maxConnections { changed.append("maxConnections") }
        if old.allowExec != new.allowExec { changed.append("allowExec") }
        if old.trustedKeys != new.trustedKeys { changed.append("trustedKeys") }
        if old.pushConcurrency != new.pushConcurrency { changed.append("pushConcurrency") }
        if old.memberConnections != new.memberConnections { changed.append("memberConnections") }
        if old.apiNice != new.apiNice { changed.append("apiNice") }
        if old.watch != new.watch { changed.append("watch") }
        if old.webhookURL != new.webhookURL || old.webhookCAFile != new.webhookCAFile || old.webhookTokenVariable != new.webhookTokenVariable {
            changed.append("webhook")
        }
        return changed
    }

    /// Runs until SIGTERM/SIGINT (or, with `signals: []`, until the task is cancelled). `onRunning` receives
    /// the bound port (useful with port 0).
    public func run(signals: [UnixSignal] = [.sigterm, .sigint], onRunning: @escaping @Sendable (Int) -> Void = { _ in })
        async throws
    {
        let tokens = try TokenSource(path: config.tokensPath, logger: logger)
        let transport = config.webhookURL == nil ? nil : CurlTransport()
        defer { transport?.shutdown() }
        let after = afterDriftReport(transport: transport)
        // API requests (and the HTTP event loop) run below pushes and jobs in CPU priority
        let requestExecutor = config.apiNice > 0 ? ThreadPoolExecutor(threads: ProcessInfo.processInfo.activeProcessorCount, nice: config.apiNice) : nil
        let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if config.apiNice > 0 {
            let nice = config.apiNice
            try await eventLoops.next().submit { ThreadPoolExecutor.lowerPriority(nice) }.get()
        }
        var follower: GitFollowService?
        if config.followed != nil {
            follower = GitFollowService(operations: operations, pollInterval: config.pollInterval, metrics: metrics, logger: self.logger,
                                        onRejected: notify(transport: transport))
        }
        var hook: GitHook?
        if let followed = config.followed, let follower {
            if let variable = config.gitWebhookSecretVariable {
                if let secret = ProcessInfo.processInfo.environment[variable], !secret.isEmpty {
                    hook = GitHook(branch: followed.branch, secret: secret) { await follower.trigger() }
                } else {
                    self.logger.warning("policyhub: \(variable) is not set: POST /v1/hooks/git is off, the branch is polled every \(Int(config.pollInterval)) s")
                }
            }
        }
        let api = HubAPI(operations: operations, tokens: tokens, metrics: metrics, maxBodyBytes: config.maxBodyBytes,
                         logger: logger, requestExecutor: requestExecutor, gitHook: hook, afterDriftReport: after)
        // replicas on one database: one of them at a time runs the scheduled jobs (the watches are divided)
        let leadership = operations.sharedStore.map { Leadership(store: $0, logger: self.logger) }
        if leadership != nil, let problem = Replica.ttlProblem { logger.warning("policyhub: warning: \(problem)") }
        let scheduler = SchedulerService(
            schedule: Schedule(drift: config.driftSchedule, reconcileInterval: config.reconcileInterval,
                               selfHealInterval: config.selfHealInterval),
            operations: operations, clock: clock, metrics: metrics, logger: logger, leadership: leadership, afterDriftReport: after)
        // a connection that sends half a request head, or sits idle, is closed after idleTimeout; beyond
        // maxConnections open at once, a new connection is closed as soon as it is accepted
        let connections = ConnectionLimit(maximum: config.maxConnections, metrics: metrics, logger: logger)
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [ConnectionLimit.Handler(limit: connections)],
                                               idleTimeout: .milliseconds(Int64(config.idleTimeout * 1000)))
        let server: HTTPServerBuilder
        if let certificate = config.tlsCertificate, let key = config.tlsKey {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain,
                                                               privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            server = try .tls(.http1(configuration: http1), tlsConfiguration: tls)
        } else {
            server = .http1(configuration: http1)
        }
        let logger = self.logger
        let scheme = config.tlsCertificate == nil ? "http" : "https"
        let host = config.host
        let app = Application(
            router: api.router(), server: server,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "policyhub"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("policyhub serving \(scheme)://\(host):\(port)")
                onRunning(port)
            },
            eventLoopGroupProvider: .shared(eventLoops),
            logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app), .init(service: scheduler)]
        if let follower { services.append(.init(service: follower)) }
        if config.watch {
            let roster = operations.sharedStore.map { ReplicaRoster(store: $0, logger: self.logger) }
            services.append(.init(service: WatchService(operations: operations, metrics: metrics, logger: logger, roster: roster,
                                                        afterDriftReport: after)))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: signals, logger: logger))
        // SIGHUP reads the tokens file (it is also read again whenever it changes) and hub.yaml again instead
        // of ending the daemon; only a daemon that handles signals at all traps it
        let reloads = signals.isEmpty ? nil : Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { await self.reload(tokens: tokens, scheduler: scheduler) }
        }
        defer { reloads?.cancel() }
        try await group.run()
        try? await eventLoops.shutdownGracefully()
        logger.info("policyhub stopped: requests and jobs in progress finished")
    }
}

/// The bound on connections open at once. Each accepted connection takes a slot when its handler is added
/// and gives it back when the handler is removed (the connection closed); a connection that finds no slot
/// is closed at once, counted in `policyhub_connections_refused_total`, and logged once per burst.
final class ConnectionLimit: @unchecked Sendable {
    let maximum: Int
    let metrics: HubMetrics
    let logger: Logger
    private let lock = NSLock()
    private var open = 0
    private var refusedSinceLog = 0

    init(maximum: Int, metrics: HubMetrics, logger: Logger) {
        self.maximum = maximum
        self.metrics = metrics
        self.logger = logger
    }

    /// Takes a slot, or says there is none.
    func take() -> Bool {
        let (taken, first) = lock.withLock { () -> (Bool, Bool) in
            if open < maximum {
                open += 1
                refusedSinceLog = 0
                return (true, false)
            }
            refusedSinceLog += 1
            return (false, refusedSinceLog == 1)
        }
        if !taken {
            metrics.increment("policyhub_connections_refused_total")
            if first { logger.warning("\(maximum) connections are open (maxConnections): closing new ones until one ends") }
        }
        return taken
    }

    func give() { lock.withLock { open -= 1 } }

    /// Open connections now (tests).
    var count: Int { lock.withLock { open } }

    /// The per-connection handler: passes everything through; holds the connection's slot.
    final class Handler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = NIOAny
        let limit: ConnectionLimit
        private var holds = false

        init(limit: ConnectionLimit) { self.limit = limit }

        func handlerAdded(context: ChannelHandlerContext) {
            holds = limit.take()
            if !holds { context.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            if holds { limit.give() }
            holds = false
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard holds else { return }
            context.fireChannelRead(data)
        }
    }
}
