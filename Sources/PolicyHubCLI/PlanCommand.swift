import ArgumentParser
import Foundation
import HubEngine
import HubStore
import Members
import PolicyCore
import PolicyYAML

/// `policyhub plan`: what `apply` would create, update and delete on each cluster.
struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show, per cluster, the objects apply would create, update and delete, with the changed rules.",
        discussion: """
            Compares each cluster's desired effective policy (policies/ for the root environment, the desired \
            revision for the others) with what the state file says it holds, or with what the member really \
            holds (--live). Changes nothing. Exit 0 with no change, 2 when apply would change something, 1 on error.

            Lines start with + (created, shown in full), ~ (updated, with the changed fields) and - (deleted), \
            in colour on a terminal (not with NO_COLOR set or --no-color); the last line sums the plan up.

            Saved plans: --out FILE writes the plan (the revision, each cluster's desired hash and its objects \
            with their hashes) with the hash of everything it was made from: the repository's files and commit, \
            the state file's records, and the objects of every member to push (read, as with --live). \
            `policyhub apply FILE` then pushes exactly that plan, and refuses, naming what moved, when any of \
            those changed since:

              policyhub plan --out plan.json     # in CI, for review
              policyhub apply plan.json          # later: what was reviewed, or nothing
            """)

    @OptionGroup var repository: RepositoryOptions

    @OptionGroup var member: MemberOptions

    @OptionGroup var view: PolicyViewOptions

    @Option(name: .long, help: ArgumentHelp("The state: a SQLite file (default .policyhub/state.sqlite) or postgres://USER@HOST:PORT/DB (password from PGPASSWORD or passwordFile=FILE in the URL).", valueName: "path|url"))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("Plan only this cluster (repeatable).", valueName: "name"))
    var cluster: [String] = []

    @Flag(name: .long, help: "Compare with the objects the member holds now instead of the recorded state.")
    var live = false

    @Option(name: .long, help: "text or json.")
    var output: OutputFormat = .text

    @Option(name: .long, help: ArgumentHelp("Save the plan to this file for `policyhub apply FILE` (reads the members, as --live).", valueName: "file"))
    var out: String?

    @Flag(name: .long, help: "No colour, even on a terminal (as the NO_COLOR environment variable).")
    var noColor = false

    @Option(name: .long, help: ArgumentHelp("How many members are read at once (--live, --out).", valueName: "count"))
    var concurrency: Int = 8

    func validate() throws {
        if out != nil && (view.env != nil || view.revision != nil) {
            throw ValidationError("--out saves a plan of the working tree, which apply records and pushes; it cannot be combined with --env or --revision")
        }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
    }

    struct ClusterPlan {
        var cluster: MemberCluster
        var note: String?
        var create: [(ObjectIdentity, Value)] = []
        var update: [(ObjectIdentity, [ValueDiff.Change])] = []
        var delete: [ObjectIdentity] = []
        var error: String?

        var changes: Int { create.count + update.count + delete.count }
    }

    @OptionGroup var diagnostics: DiagnosticOptions

    func run() async throws {
        member.startWatchdog()
        diagnostics.start(command: "policyhub plan")
        defer { DiagnosticSink.shared.finish() }
        let stored = view.env != nil || view.revision != nil
        var opened = try cli { () throws(EngineError) in
            try repository.engine(state: state).open(workingTree: stored ? .optional : .required)
        }
        opened.limits = member.limits
        let session = opened
        let names = cluster
        var clusters = try cli { () throws(EngineError) in try session.clusters(named: names) }
        let plan: PushPlan
        let heading: String
        var rootRevision: (revision: Revision, isNew: Bool)?
        let live = self.live || out != nil
        if stored {
            // the same session: the repository is read once
            let shown = try view.stored(in: session)
            clusters = clusters.filter { $0.environment == shown.storedRevision?.environment }
            plan = try cli { () throws(EngineError) in
                try PushPlan.make(session: session, clusters: clusters, rootRevision: nil, override: shown.storedRevision)
            }
            heading = "plan of \(shown.description)"
        } else {
            rootRevision = try cli { () throws(EngineError) in try session.rootRevisionForWorkingTree(author: "plan") }
            plan = try cli { () throws(EngineError) in
                try PushPlan.make(session: session, clusters: clusters, rootRevision: rootRevision?.revision)
            }
            heading = "plan of the working tree policies/ for \(session.fleet.root?.name ?? "the root environment"), each other environment's desired revision"
        }
        let states = try cli { () throws(EngineError) in try session.clusterStates() }
        printPrecedenceWarnings(plan.items)
        var results: [ClusterPlan] = []
        for (name, reason) in plan.untouched {
            if let member = session.fleet.cluster(named: name) { results.append(ClusterPlan(cluster: member, note: reason)) }
        }
        let members = live ? await session.readMembers(plan.items.map(\.cluster), concurrency: concurrency) : [:]
        for item in plan.toPush + plan.inStep {
            var result = ClusterPlan(cluster: item.cluster)
            var current: [ObjectIdentity: Value] = [:]
            if live {
                switch members[item.cluster.name] {
                case .failure(let error)?: result.error = error.description
                case .success(let objects)?: current = objects
                case nil: result.error = "not read"
                }
            } else if let applied = states[item.cluster.name]?.appliedRevision {
                let renderer = try cli { () throws(EngineError) in try session.renderer(for: try session.storedRevision(applied)) }
                for object in renderer.render(cluster: item.cluster).objects { current[object.identity] = object.value }
            }
            if result.error == nil {
                let desired = Dictionary(item.policy.objects.map { ($0.identity, $0.value) }, uniquingKeysWith: { a, _ in a })
                for (identity, value) in desired.sorted(by: { $0.key < $1.key }) {
                    guard let old = current[identity] else {
                        result.create.append((identity, value))
                        continue
                    }
                    let changes = ValueDiff.changes(from: DriftComparison.comparable(old), to: DriftComparison.comparable(value))
                    if !changes.isEmpty { result.update.append((identity, changes)) }
                }
                result.delete = current.keys.filter { desired[$0] == nil }.sorted()
            }
            results.append(result)
        }
        session.transports.shutdown()
        results.sort { $0.cluster.name < $1.cluster.name }
        switch output {
        case .json: print(JSONWriter.pretty(.list(results.map(PlanCommand.value))), terminator: "")
        case .text:
            let colour = Palette(enabled: Palette.wanted(noColor: noColor))
            print(heading + (live ? ", against what the members hold" : ", against the state file") + "\n"
                  + PlanCommand.text(results, colour: colour) + PlanCommand.footer(results, colour: colour), terminator: "")
        }
        if results.contains(where: { $0.error != nil }) {
            if let out { printError("policyhub: the plan was not saved to \(out): a member could not be read (named above)") }
            throw ExitStatus.failure
        }
        if let out {
            let pushed = Set(plan.toPush.map(\.cluster.name))
            let changes = Dictionary(uniqueKeysWithValues: results.filter { pushed.contains($0.cluster.name) }.map { result in
                (result.cluster.name, (create: result.create.map(\.0), update: result.update.map(\.0), delete: result.delete))
            })
            let pushedMembers = members.filter { pushed.contains($0.key) }
            let saved = try cli { () throws(EngineError) in
                try SavedPlan.make(session: session, plan: plan, rootRevision: rootRevision, selection: names,
                                   members: pushedMembers, changes: changes)
            }
            try cli { () throws(EngineError) in try writeAtomically(saved.json, to: out) }
            printError("policyhub: saved the plan to \(out) (\(plan.toPush.count) cluster\(plan.toPush.count == 1 ? "" : "s") to push); push exactly this with: policyhub apply \(out)")
        }
        if results.contains(where: { $0.changes > 0 }) { throw ExitCode(2) }
    }

    static func value(_ plan: ClusterPlan) -> Value {
        var map = ValueMapBuilder()
        map.set("cluster", .string(plan.cluster.name))
        map.set("environment", .string(plan.cluster.environment))
        map.set("note", plan.note.map(Value.string))
        map.set("error", plan.error.map(Value.string))
        map.set("create", .list(plan.create.map { identity, value in
            .map([Value.MapEntry("object", .string(identity.description)), Value.MapEntry("value", value)])
        }))
        map.set("update", .list(plan.update.map { identity, changes in
            .map([Value.MapEntry("object", .string(identity.description)),
                  Value.MapEntry("changes", .list(changes.map { change in
                      var entry = ValueMapBuilder()
                      entry.set("path", .string(change.path))
                      entry.set("before", change.old ?? .null)
                      entry.set("after", change.new ?? .null)
                      entry.set("text", .string(change.description))
                      return entry.value
                  }))])
        }))
        map.set("delete", .list(plan.delete.map { .map([Value.MapEntry("object", .string($0.description))]) }))
        return map.value
    }

    /// The last line: how much the plan changes, as terraform sums up its plans.
    static func footer(_ plans: [ClusterPlan], colour: Palette) -> String {
        let changing = plans.filter { $0.changes > 0 }
        let failed = plans.filter { $0.error != nil }.count
        let unread = failed == 0 ? "" : " (\(failed) cluster\(failed == 1 ? "" : "s") could not be planned)"
        if changing.isEmpty { return "Plan: no changes; every cluster planned is in step\(unread).\n" }
        let add = changing.map(\.create.count).reduce(0, +), change = changing.map(\.update.count).reduce(0, +)
        let destroy = changing.map(\.delete.count).reduce(0, +)
        return "Plan: \(changing.count) cluster\(changing.count == 1 ? "" : "s") to change, "
            + colour.green("\(add) object\(add == 1 ? "" : "s") to add") + ", " + colour.yellow("\(change) to change") + ", "
            + colour.red("\(destroy) to destroy") + "\(unread).\n"
    }

    static func text(_ plans: [ClusterPlan], colour: Palette = Palette(enabled: false)) -> String {
        var out = ""
        for plan in plans {
            out += "\(plan.cluster.name) (\(plan.cluster.environment)): "
            if let note = plan.note {
                out += note + "\n"
                continue
            }
            if let error = plan.error {
                out += colour.red("cannot plan: \(error)") + "\n"
                continue
            }
            if plan.changes == 0 {
                out += "in step\n"
                continue
            }
            out += "\(plan.create.count) to create, \(plan.update.count) to update, \(plan.delete.count) to delete\n"
            for (identity, value) in plan.create {
                out += colour.green("  + \(identity)") + "\n"
                // a created object in full: its spec, as it will be pushed
                if let spec = value["spec"] {
                    let yaml = YAMLWriter.document(.map([Value.MapEntry("spec", spec)]))
                    for line in yaml.split(separator: "\n", omittingEmptySubsequences: true) where line != "---" {
                        out += colour.green("      \(line)") + "\n"
                    }
                }
            }
            for (identity, changes) in plan.update {
                out += colour.yellow("  ~ \(identity)") + "\n"
                for change in changes { out += "      \(change)\n" }
            }
            for identity in plan.delete { out += colour.red("  - \(identity)") + "\n" }
        }
        return out
    }
}
