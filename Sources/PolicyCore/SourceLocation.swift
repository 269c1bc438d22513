/// A place in an input file: repository-relative path, 1-based line and column.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// The first character of `file`, for problems that concern a whole file.
    public static func start(of file: String) -> SourceLocation {
        SourceLocation(file: file, line: 1, column: 1)
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// Where a model value was written: the start of the item and the positions of its fields.
///
/// Provenance is not identity: two values that differ only in where they were written are equal,
/// so `Origin` compares equal to every other `Origin` and adds nothing to a hash. This is what lets
/// a document printed back to YAML and parsed again compare equal to the original.
public struct Origin: Sendable, Hashable {
    public var location: SourceLocation
    /// Positions of field values, by field name, in the order they were read.
    public var fields: [(name: String, line: Int32, column: Int32)]

    public init(location: SourceLocation, fields: [(name: String, line: Int32, column: Int32)] = []) {
        self.location = location
        self.fields = fields
    }

    /// An origin for values that were not read from a file (generated or defaulted).
    public static let generated = Origin(location: SourceLocation(file: "<generated>", line: 0, column: 0))

    /// The position of the value of `field`, or of the item itself when the field was not written.
    public func at(_ field: String) -> SourceLocation {
        for entry in fields where entry.name == field {
            return SourceLocation(file: location.file, line: Int(entry.line), column: Int(entry.column))
        }
        return location
    }

    public static func == (_: Origin, _: Origin) -> Bool { true }
    public func hash(into _: inout Hasher) {}
}
