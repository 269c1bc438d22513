import Foundation
import PolicyCore
import PolicyYAML

/// Paths of the repository and its fixtures, found from this file's location.
enum Paths {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let conformance = packageRoot + "/Tests/PolicyYAMLTests/Fixtures/neuvector"
    /// The shared corpus beside the repository, when this checkout has one.
    static let sharedConformance = packageRoot + "/../shared/conformance/neuvector"

    static func yamlFiles(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }
}

func decode(_ text: String, file: String = "policies/global/test.yaml") -> (objects: [PolicyObject], diagnostics: [Diagnostic]) {
    PolicyDecoder.decodeFile(Array(text.utf8), file: file)
}
