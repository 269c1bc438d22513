import Crypto
import Foundation
import HubStore
import Members

/// A policy repository that is a git work tree, read with the system git (Debian's `git`, as Argo CD
/// does; the README says why not libgit2). git runs with no system or user configuration, no hooks, no
/// fsmonitor and the signature programs found on the hub's own `PATH`, so nothing in the repository (its
/// `.git/config` included) makes the hub run a program; signatures are checked against the operator's
/// `TrustedKeys` only, in a keyring made for the check.
public struct GitWorkTree: Sendable {
    /// The policy repository (may be a folder inside the work tree).
    public let root: String
    let git: String

    /// The work tree at `root`, or nil when `root` is not inside one (or git is not installed).
    public static func at(_ root: String) -> GitWorkTree? {
        guard let git = GitWorkTree.programs.git, FileManager.default.fileExists(atPath: root) else { return nil }
        let tree = GitWorkTree(root: root, git: git)
        guard (try? tree.line(["rev-parse", "--is-inside-work-tree"])) == "true" else { return nil }
        return tree
    }

    /// A commit named by `revision` (`HEAD`, a full or short id, a branch or a tag), with its signature
    /// checked against `keys`. Throws when there is no such commit or a trusted key file cannot be read.
    public func commit(_ revision: String, keys: TrustedKeys) throws(EngineError) -> CommitProvenance {
        guard !revision.isEmpty, !revision.hasPrefix("-"),
              revision.allSatisfy({ $0.isLetter || $0.isNumber || "._/-^~@{}".contains($0) }) else {
            throw .invalid("'\(revision)' is not a commit name (an id, a branch, a tag or HEAD)")
        }
        let check = try SignatureCheck(keys: keys, repository: root)
        let format = ["%H", "%an <%ae>", "%cn <%ce>", "%ct", "%s", "%G?", "%GK", "%GF", "%GP", "%GS"].joined(separator: "%x00")
        let text: String
        do {
            text = try run(["log", "-1", "--no-show-signature", "--format=\(format)", revision + "^{commit}", "--"], check: check)
        } catch {
            throw .notFound("\(root): no commit '\(revision)': \(error.message)")
        }
        let fields = text.trimmingCharacters(in: .newlines).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 10 else { throw .failure("\(root): git log printed something unexpected for \(revision)") }
        let status: SignatureStatus
        switch fields[5] {
        case "G": status = .good
        case "B", "X", "Y", "R": status = .bad  // bad, or good but made with an expired or revoked key
        case "N": status = .unsigned
        default: status = .unknownKey  // U (SSH key not among the allowed signers), E (no such key in the keyring)
        }
        let key = [fields[8], fields[7], fields[6]].first { !$0.isEmpty }
        return CommitProvenance(commit: fields[0], author: fields[1], committer: fields[2], committedAt: Double(fields[3]) ?? 0,
                                subject: fields[4], signature: status, signer: fields[9].isEmpty ? nil : fields[9],
                                signingKey: status == .unsigned ? nil : key)
    }

    /// The files of `folders` that differ from `commit`: `path (modified|added|deleted)`, the YAML files the hub
    /// reads (`RepositoryLoader.yamlFiles`) compared byte for byte with the commit's blobs, so that ignored and
    /// untracked files count too and no clean filter of the repository runs.
    public func differences(from commit: String, folders: [String]) throws(EngineError) -> [String] {
        let format = try line(["rev-parse", "--show-object-format"])
        let listing = try run(["ls-tree", "-r", "-z", commit, "--"] + folders, check: nil)
        var committed: [String: String] = [:]
        for entry in listing.split(separator: "\0") {
            // <mode> SP <type> SP <object> TAB <path>
            guard let tab = entry.firstIndex(of: "\t") else { continue }
            let head = entry[..<tab].split(separator: " ")
            let path = String(entry[entry.index(after: tab)...])
            guard head.count == 3, path.hasSuffix(".yaml") || path.hasSuffix(".yml") else { continue }
            committed[path] = head[1] == "blob" && head[0] != "120000" ? String(head[2]) : "not a file"
        }
        var out: [String] = []
        var read = Set<String>()
        for folder in folders {
            for path in RepositoryLoader.yamlFiles(root: root, folder: folder) {
                read.insert(path)
                guard let blob = committed[path] else {
                    out.append("\(path) (not committed)")
                    continue
                }
                let bytes = FileManager.default.contents(atPath: (root as NSString).appendingPathComponent(path)) ?? Data()
                if GitWorkTree.blobID(bytes, format: format) != blob { out.append("\(path) (modified)") }
            }
        }
        for path in committed.keys where !read.contains(path) { out.append("\(path) (deleted)") }
        return out.sorted()
    }

    /// git's object id of a blob holding `bytes`.
    static func blobID(_ bytes: Data, format: String) -> String {
        let header = Data("blob \(bytes.count)\0".utf8)
        if format == "sha256" {
            var hash = SHA256()
            hash.update(data: header)
            hash.update(data: bytes)
            return hash.finalize().map { String(format: "%02x", $0) }.joined()
        }
        var hash = Insecure.SHA1()
        hash.update(data: header)
        hash.update(data: bytes)
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Runs git in `root` with the hub's own settings; its output. Throws with git's message on failure.
    func run(_ arguments: [String], check: SignatureCheck?) throws(EngineError) -> String {
        var settings = ["core.fsmonitor=false", "core.hooksPath=/dev/null", "core.quotePath=false", "log.showSignature=false",
                        "gpg.ssh.allowedSignersFile=\(check?.allowedSigners ?? "/dev/null")", "gpg.ssh.revocationFile=/dev/null"]
        if let gpg = GitWorkTree.programs.gpg { settings += ["gpg.program=\(gpg)", "gpg.openpgp.program=\(gpg)"] }
        if let sshKeygen = GitWorkTree.programs.sshKeygen { settings.append("gpg.ssh.program=\(sshKeygen)") }
        settings.append("gpg.x509.program=/bin/false")
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(git, ["-C", root] + settings.flatMap { ["-c", $0] } + arguments,
                                           environment: GitWorkTree.environment(check: check), timeout: 120)
        } catch {
            throw .failure("cannot run git (\(git)): \(error.localizedDescription)")
        }
        guard outcome.status == 0 else {
            throw .failure(outcome.timedOut ? "git \(arguments.first ?? "") took over 120 s and was stopped" : outcome.lastErrorLine)
        }
        return String(decoding: outcome.output, as: UTF8.self)
    }

    /// Its output's one line (surrounding white space removed).
    func line(_ arguments: [String]) throws(EngineError) -> String {
        try run(arguments, check: nil).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// git, gpg and ssh-keygen on the hub's own `PATH`, found once per process (every git call names them).
    static let programs = (git: ExecPlugin.resolve("git", kubeconfigFolder: "/"), gpg: ExecPlugin.resolve("gpg", kubeconfigFolder: "/"),
                           sshKeygen: ExecPlugin.resolve("ssh-keygen", kubeconfigFolder: "/"))

    /// No configuration but the command line's, no prompt, no pager, a keyring of the trusted keys only.
    static func environment(check: SignatureCheck?) -> [String: String] {
        let inherited = ProcessInfo.processInfo.environment
        var environment = ["PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C",
                           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
                           "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0"]
        environment["HOME"] = check?.folder ?? "/nonexistent"
        environment["GNUPGHOME"] = check.map { $0.folder + "/gnupg" } ?? "/nonexistent"
        return environment
    }
}

/// Keys the operator trusts to sign policy commits (`--trusted-keys`, `trustedKeys:` in hub.yaml), never
/// read from the policy repository: OpenPGP public keys (`gpg --export`, armored or not) and SSH
/// allowed-signers files (git's `gpg.ssh.allowedSignersFile` format: `principal key-type key`).
public struct TrustedKeys: Sendable, Hashable {
    public var files: [String]

    public init(files: [String] = []) { self.files = files }
}

/// A folder made for one signature check: a keyring of the trusted OpenPGP keys (`trust-model always`: a
/// key is trusted because the operator named it) and one allowed-signers file; removed afterwards.
final class SignatureCheck {
    let folder: String
    let allowedSigners: String

    init(keys: TrustedKeys, repository: String) throws(EngineError) {
        let template = (NSTemporaryDirectory() as NSString).appendingPathComponent("policyhub-keys-XXXXXX")
        var buffer = Array(template.utf8CString)
        guard let made = mkdtemp(&buffer) else { throw .failure("cannot make a folder for signature checks: \(String(cString: strerror(errno)))") }
        folder = String(cString: made)
        allowedSigners = folder + "/allowed_signers"
        do {
            try prepare(keys: keys, repository: repository)
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    private func prepare(keys: TrustedKeys, repository: String) throws(EngineError) {
        let gnupg = folder + "/gnupg"
        do {
            try FileManager.default.createDirectory(atPath: gnupg, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            try Data("trust-model always\nno-autostart\n".utf8).write(to: URL(fileURLWithPath: gnupg + "/gpg.conf"))
        } catch {
            throw .failure("cannot prepare a keyring for signature checks: \(error.localizedDescription)")
        }
        var signers = ""
        let repositoryPath = ExecPlugin.realPath(repository)
        for file in keys.files {
            let path = ExecPlugin.realPath(file)
            if path == repositoryPath || path.hasPrefix(repositoryPath + "/") {
                throw .invalid("trusted keys \(file) lie inside the policy repository; the keys that may sign policy are the operator's, kept outside it")
            }
            guard let bytes = FileManager.default.contents(atPath: path) else { throw .invalid("cannot read the trusted keys \(file)") }
            let text = String(decoding: bytes, as: UTF8.self)
            if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") || (bytes.first.map { $0 & 0x80 != 0 } ?? false) {
                try importOpenPGP(path, named: file, gnupg: gnupg)
            } else {
                for line in text.split(whereSeparator: \.isNewline) {
                    let trimmed = line.trimmingCharacters(in: .whitespaces)
                    guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
                    // principals [options] key-type base64-key [comment]
                    let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
                    let keyType = fields.firstIndex { $0.hasPrefix("ssh-") || $0.hasPrefix("ecdsa-sha2-") || $0.hasPrefix("sk-") }
                    guard let keyType, keyType >= 1, keyType + 1 < fields.count else {
                        throw .invalid("\(file): '\(trimmed.prefix(60))' is neither an OpenPGP key nor an allowed-signers line (principal key-type key)")
                    }
                    signers += trimmed + "\n"
                }
            }
        }
        do {
            try Data(signers.utf8).write(to: URL(fileURLWithPath: allowedSigners))
        } catch {
            throw .failure("cannot write the allowed signers for signature checks: \(error.localizedDescription)")
        }
    }

    private func importOpenPGP(_ path: String, named file: String, gnupg: String) throws(EngineError) {
        guard let gpg = GitWorkTree.programs.gpg else {
            throw .failure("the trusted keys \(file) are OpenPGP keys, and gpg is not installed (apt-get install gnupg)")
        }
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(gpg, ["--batch", "--no-autostart", "--homedir", gnupg, "--import", path],
                                           environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "LC_ALL": "C"],
                                           timeout: 60)
        } catch {
            throw .failure("cannot run gpg: \(error.localizedDescription)")
        }
        guard outcome.status == 0 else { throw .invalid("the trusted keys \(file) could not be imported: \(outcome.lastErrorLine)") }
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }
}

/// The hub's checkout of a followed branch is changed whole or read whole, within this process: while a sync
/// has a new commit checked out to validate it (and puts the last accepted one back when it is refused), no
/// session reads the tree and no API write edits a file or commits there. Without it a reconcile that read the
/// tree in that window could push the fleet a commit that a gate refuses (an unsigned one, say), and an API write
/// could commit on top of a commit that was about to be rejected.
enum CheckoutLock {
    /// True inside `exclusive` (the sync's own reads of the candidate need no second turn).
    @TaskLocal static var held = false

    private static let locks = InProcessLocks()

    /// Runs `body` while this process has the checkout of `root` to itself (waits up to `timeout` seconds).
    /// Nested calls in the same task run at once.
    static func exclusive<T>(_ root: String, timeout: Double = 600, _ body: () throws(EngineError) -> T) throws(EngineError) -> T {
        if held { return try body() }
        let lock = locks.lock(root)
        guard lock.acquire(timeout: timeout, poll: 0.002) else {
            throw .failure("gave up waiting after \(Int(timeout)) s for the checkout at \(root), which a sync of the followed branch holds")
        }
        defer { lock.release() }
        let result: Result<T, EngineError> = $held.withValue(true) {
            do throws(EngineError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
