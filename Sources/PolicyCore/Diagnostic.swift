/// One problem found in the inputs, printed as `path:line:col: error: message`.
public struct Diagnostic: Sendable, Hashable, Comparable, CustomStringConvertible, Error {
    /// How bad a problem is. Errors stop a render or a push; warnings do not.
    public enum Severity: String, Sendable, Hashable, Comparable {
        case error
        case warning

        public static func < (a: Severity, b: Severity) -> Bool {
            switch (a, b) {
            case (.error, .warning): return true
            case (.error, .error), (.warning, .warning), (.warning, .error): return false
            }
        }
    }

    public var location: SourceLocation
    public var severity: Severity
    public var message: String
    /// Which check found it (`yaml-syntax`, `policy-schema`, `precedence-shadowed`, ...): the rule id of a
    /// SARIF result and the title of a GitHub annotation. Not part of the text form.
    public var rule: String

    public init(_ severity: Severity, at location: SourceLocation, _ message: String, rule: String = "policyhub") {
        self.location = location
        self.severity = severity
        self.message = message
        self.rule = rule
    }

    /// The same problem, attributed to the check `rule`.
    public func ruled(_ rule: String) -> Diagnostic {
        var copy = self
        copy.rule = rule
        return copy
    }

    public static func error(_ message: String, at location: SourceLocation, rule: String = "policyhub") -> Diagnostic {
        Diagnostic(.error, at: location, message, rule: rule)
    }

    public static func warning(_ message: String, at location: SourceLocation, rule: String = "policyhub") -> Diagnostic {
        Diagnostic(.warning, at: location, message, rule: rule)
    }

    public var isError: Bool { severity == .error }

    public var description: String { "\(location): \(severity.rawValue): \(message)" }

    public static func < (a: Diagnostic, b: Diagnostic) -> Bool {
        if a.location != b.location { return a.location < b.location }
        if a.severity != b.severity { return a.severity < b.severity }
        if a.message != b.message { return a.message < b.message }
        return a.rule < b.rule
    }
}

extension Array where Element == Diagnostic {
    /// True when any diagnostic is an error.
    public var hasErrors: Bool { contains { $0.isError } }
}
