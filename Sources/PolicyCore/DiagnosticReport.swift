/// Diagnostics in the forms CI systems read: located text, JSON, GitHub workflow commands, a SARIF 2.1.0
/// log, or a JUnit XML report with one test case per file.
public enum DiagnosticFormat: String, Sendable, CaseIterable {
    case text
    case json
    case github
    case sarif
    case junit
}

public enum DiagnosticReport {
    /// What the report says about the run that produced it.
    public struct Context: Sendable {
        /// The command, for JUnit's suite name and SARIF's invocation (`policyhub validate`).
        public var command: String
        public var version: String
        /// Every file the run read: a file with no problem is a passing JUnit test case.
        public var files: [String]

        public init(command: String, version: String, files: [String]) {
            self.command = command
            self.version = version
            self.files = files
        }
    }

    /// `diagnostics` in `format`, ending with a newline (empty text for no diagnostic in text and github form).
    public static func render(_ diagnostics: [Diagnostic], as format: DiagnosticFormat, context: Context) -> String {
        let sorted = diagnostics.sorted()
        switch format {
        case .text: return sorted.map { $0.description + "\n" }.joined()
        case .github: return sorted.map { github($0) + "\n" }.joined()
        case .json: return JSONWriter.pretty(.list(sorted.map(json)))
        case .sarif: return JSONWriter.pretty(sarif(sorted, context: context))
        case .junit: return junit(sorted, context: context)
        }
    }

    // MARK: - JSON

    static func json(_ diagnostic: Diagnostic) -> Value {
        .map([
            Value.MapEntry("file", .string(diagnostic.location.file)),
            Value.MapEntry("line", .int(diagnostic.location.line)),
            Value.MapEntry("column", .int(diagnostic.location.column)),
            Value.MapEntry("severity", .string(diagnostic.severity.rawValue)),
            Value.MapEntry("rule", .string(diagnostic.rule)),
            Value.MapEntry("message", .string(diagnostic.message)),
        ])
    }

    // MARK: - GitHub workflow commands

    /// `::error file=F,line=L,col=C,title=RULE::message`, escaped as the Actions runner unescapes.
    public static func github(_ diagnostic: Diagnostic) -> String {
        let properties = [
            "file=" + escapeProperty(diagnostic.location.file),
            "line=\(diagnostic.location.line)",
            "col=\(diagnostic.location.column)",
            "title=" + escapeProperty("policyhub " + diagnostic.rule),
        ]
        return "::\(diagnostic.severity.rawValue) \(properties.joined(separator: ","))::\(escapeData(diagnostic.message))"
    }

    static func escapeData(_ text: String) -> String {
        text.replacingAll("%", "%25").replacingAll("\r", "%0D").replacingAll("\n", "%0A")
    }

    static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingAll(":", "%3A").replacingAll(",", "%2C")
    }

    // MARK: - SARIF 2.1.0

    static func sarif(_ diagnostics: [Diagnostic], context: Context) -> Value {
        let rules = Array(Set(diagnostics.map(\.rule))).sorted()
        let index = Dictionary(uniqueKeysWithValues: rules.enumerated().map { ($1, $0) })
        let results: [Value] = diagnostics.map { diagnostic in
            var region: [Value.MapEntry] = [Value.MapEntry("startLine", .int(max(1, diagnostic.location.line)))]
            if diagnostic.location.column >= 1 { region.append(Value.MapEntry("startColumn", .int(diagnostic.location.column))) }
            return .map([
                Value.MapEntry("ruleId", .string(diagnostic.rule)),
                Value.MapEntry("ruleIndex", .int(index[diagnostic.rule] ?? 0)),
                Value.MapEntry("level", .string(diagnostic.severity == .error ? "error" : "warning")),
                Value.MapEntry("message", .map([Value.MapEntry("text", .string(diagnostic.message))])),
                Value.MapEntry("locations", .list([.map([
                    Value.MapEntry("physicalLocation", .map([
                        Value.MapEntry("artifactLocation", .map([
                            Value.MapEntry("uri", .string(uri(diagnostic.location.file))),
                            Value.MapEntry("uriBaseId", .string("SRCROOT")),
                        ])),
                        Value.MapEntry("region", .map(region)),
                    ])),
                ])])),
            ])
        }
        let driver: Value = .map([
            Value.MapEntry("name", .string("policyhub")),
            Value.MapEntry("version", .string(context.version)),
            Value.MapEntry("rules", .list(rules.map { rule in
                .map([
                    Value.MapEntry("id", .string(rule)),
                    Value.MapEntry("shortDescription", .map([Value.MapEntry("text", .string(ruleDescriptions[rule] ?? "PolicyHub check \(rule)"))])),
                ])
            })),
        ])
        let run: Value = .map([
            Value.MapEntry("tool", .map([Value.MapEntry("driver", driver)])),
            Value.MapEntry("invocations", .list([.map([
                Value.MapEntry("commandLine", .string(context.command)),
                Value.MapEntry("executionSuccessful", .bool(!diagnostics.hasErrors)),
            ])])),
            Value.MapEntry("originalUriBaseIds", .map([
                Value.MapEntry("SRCROOT", .map([Value.MapEntry("description", .map([Value.MapEntry("text", .string("The policy repository"))]))])),
            ])),
            Value.MapEntry("results", .list(results)),
        ])
        return .map([
            Value.MapEntry("$schema", .string("https://json.schemastore.org/sarif-2.1.0.json")),
            Value.MapEntry("version", .string("2.1.0")),
            Value.MapEntry("runs", .list([run])),
        ])
    }

    /// A repository-relative path as a relative URI reference (RFC 3986: unreserved characters and `/` kept).
    static func uri(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 15)])
            }
        }
        return out
    }

    /// What each check looks at, for SARIF's rule descriptions.
    public static let ruleDescriptions: [String: String] = [
        "yaml-syntax": "The file is well-formed YAML",
        "file-size": "The file is within the size limit",
        "file-read": "The file can be read and stays inside the repository",
        "policy-schema": "A policy document has NeuVector's CRD shape",
        "policy-rule": "A policy document's rules are valid and defined once",
        "fleet-schema": "A file of clusters/ has the hub's shape",
        "fleet": "Environments and clusters form a valid fleet",
        "kubeconfig": "A member's kubeconfig can be read and is understood",
        "kubeconfig-exec": "A kubeconfig's exec credential plugin is allowed by the operator",
        "directory-member": "A directory member's path is a folder of its own",
        "placement-empty": "A document's placement selects some cluster",
        "precedence-ambiguous": "Two rules of equal precedence do not contradict",
        "precedence-shadowed": "A rule is not hidden by one of higher precedence",
        "precedence-redundant": "A rule is not a repetition of another",
        "precedence-overridden": "A setting is not overridden by one of higher precedence",
        "precedence-unresolved": "A reference resolves",
        "policyhub": "A PolicyHub check",
    ]

    // MARK: - JUnit

    /// One `<testcase>` per file read (and per file only a diagnostic names); a file's errors are its
    /// `<failure>`, its warnings its `<system-out>`.
    static func junit(_ diagnostics: [Diagnostic], context: Context) -> String {
        var byFile: [String: [Diagnostic]] = [:]
        for diagnostic in diagnostics { byFile[diagnostic.location.file, default: []].append(diagnostic) }
        let files = Array(Set(context.files).union(byFile.keys)).sorted()
        let failing = files.filter { byFile[$0]?.contains(where: \.isError) == true }.count
        let suite = xml(context.command)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"\(suite)\" tests=\"\(files.count)\" failures=\"\(failing)\" errors=\"0\">\n"
        out += "  <testsuite name=\"\(suite)\" tests=\"\(files.count)\" failures=\"\(failing)\" errors=\"0\" skipped=\"0\">\n"
        for file in files {
            let found = byFile[file] ?? []
            let errors = found.filter(\.isError)
            let warnings = found.filter { !$0.isError }
            out += "    <testcase classname=\"policyhub\" name=\"\(xml(file))\" file=\"\(xml(file))\""
            if found.isEmpty {
                out += "/>\n"
                continue
            }
            out += ">\n"
            if !errors.isEmpty {
                let summary = errors.count == 1 ? errors[0].message : "\(errors.count) errors, the first: \(errors[0].message)"
                out += "      <failure message=\"\(xml(summary))\" type=\"\(xml(errors[0].rule))\">"
                out += xml(errors.map(\.description).joined(separator: "\n")) + "</failure>\n"
            }
            if !warnings.isEmpty {
                out += "      <system-out>" + xml(warnings.map(\.description).joined(separator: "\n")) + "</system-out>\n"
            }
            out += "    </testcase>\n"
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    /// Text escaped for XML content and attributes; characters XML 1.0 cannot hold become U+FFFD.
    static func xml(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            case "\t", "\r": out += "&#\(scalar.value);"
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
