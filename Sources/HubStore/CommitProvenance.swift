import PolicyCore

/// What a commit's signature says, checked against the keys the operator trusts (never the repository's).
public enum SignatureStatus: String, Sendable, Hashable, CaseIterable {
    /// Made by a trusted key, and the commit is unchanged since.
    case good
    /// A signature that does not match the commit, or made by an expired or revoked key.
    case bad
    /// A signature by a key the operator does not trust (or that cannot be checked).
    case unknownKey = "unknown-key"
    /// No signature.
    case unsigned
}

/// The git commit a revision was recorded from (SEMANTICS "Revisions from commits", docs/semantics.md).
public struct CommitProvenance: Sendable, Hashable {
    /// The full commit id.
    public var commit: String
    /// `Name <email>` of the author and of the committer.
    public var author: String
    public var committer: String
    /// The committer's time, seconds since 1970.
    public var committedAt: Double
    /// The first line of the commit message.
    public var subject: String
    public var signature: SignatureStatus
    /// Who signed, as the key names them (an OpenPGP user id, an SSH principal); nil when unknown.
    public var signer: String?
    /// The signing key's fingerprint (OpenPGP) or `SHA256:` hash (SSH); nil when unsigned.
    public var signingKey: String?
    /// True when `policies/` or `clusters/` differed from the commit (`apply --allow-dirty`): the revision
    /// holds what was on disk, which no commit holds.
    public var dirty: Bool
    /// True when the revision was recorded under `requireSignedCommits`: lifting that gate later takes a
    /// commit signed by a trusted key.
    public var signatureRequired: Bool

    public init(commit: String, author: String, committer: String, committedAt: Double, subject: String,
                signature: SignatureStatus, signer: String? = nil, signingKey: String? = nil, dirty: Bool = false,
                signatureRequired: Bool = false) {
        self.commit = commit
        self.author = author
        self.committer = committer
        self.committedAt = committedAt
        self.subject = subject
        self.signature = signature
        self.signer = signer
        self.signingKey = signingKey
        self.dirty = dirty
        self.signatureRequired = signatureRequired
    }

    /// The short commit id people read (12 characters).
    public var shortCommit: String { String(commit.prefix(12)) }

    /// One line for logs and the audit: `commit 0123abcd4567 (signature good by Sec <s@x> 04DA...)`.
    public var summary: String {
        var text = "commit \(shortCommit)\(dirty ? " with uncommitted changes" : "") (signature \(signature.rawValue)"
        if let signer { text += " by \(signer)" }
        if let signingKey { text += " key \(signingKey)" }
        return text + ")"
    }
}
