import Foundation
import HubEngine
import PolicyCore
import Testing

/// What the repository reader refuses before reading: links that lead outside the repository, and files
/// larger than the YAML limit (checked by size, never read whole).
@Suite struct RepositoryFilesTests {
    static func withExample(_ body: (String) throws -> Void) throws {
        let folder = NSTemporaryDirectory() + "policyhub-files-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for part in ["policies", "clusters"] {
            try FileManager.default.copyItem(atPath: Fleet.exampleRoot + "/" + part, toPath: folder + "/" + part)
        }
        try body(folder)
    }

    @Test func linksThatLeadOutsideAreRefusedAndNeverEchoed() throws {
        try Self.withExample { folder in
            let outside = NSTemporaryDirectory() + "policyhub-outside-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: outside) }
            try "secret: hunter2-in-a-file-outside\n".write(toFile: outside + "/secret.yaml", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: folder + "/policies/global/secret.yaml", withDestinationPath: outside + "/secret.yaml")
            try FileManager.default.createSymbolicLink(atPath: folder + "/clusters/outside.yaml", withDestinationPath: outside + "/secret.yaml")
            try FileManager.default.createSymbolicLink(atPath: folder + "/policies/namespaces/elsewhere", withDestinationPath: outside)
            // a link that stays inside the repository is an ordinary file
            try FileManager.default.createDirectory(atPath: folder + "/shared", withIntermediateDirectories: true)
            try FileManager.default.moveItem(atPath: folder + "/policies/global/baseline.yaml", toPath: folder + "/shared/baseline.yaml")
            try FileManager.default.createSymbolicLink(atPath: folder + "/policies/global/baseline.yaml", withDestinationPath: "../../shared/baseline.yaml")
            let workspace = Workspace.open(root: folder)
            let errors = workspace.diagnostics.filter(\.isError)
            #expect(errors.map(\.location.file).sorted() == ["clusters/outside.yaml", "policies/global/secret.yaml",
                                                              "policies/namespaces/elsewhere"], "\(errors)")
            #expect(errors.allSatisfy { $0.message.contains("outside the repository") })
            #expect(!workspace.diagnostics.map(\.description).joined().contains("hunter2"))
            #expect(workspace.repository.tree.objects.contains { $0.metadata.name == "baseline-defaults" })
        }
    }

    @Test func aHugeFileIsRefusedByItsSizeWithoutBeingRead() throws {
        try Self.withExample { folder in
            // 3 GiB, sparse: no disk is used, and reading it whole would take 3 GiB of memory
            let path = folder + "/policies/global/huge.yaml"
            #expect(FileManager.default.createFile(atPath: path, contents: nil))
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.truncate(atOffset: 3 << 30)
            try handle.close()
            let started = Date()
            let workspace = Workspace.open(root: folder)
            #expect(Date().timeIntervalSince(started) < 5)
            let error = try #require(workspace.diagnostics.first { $0.location.file == "policies/global/huge.yaml" })
            #expect(error.description == "policies/global/huge.yaml:1:1: error: file is 3221225472 bytes; the limit is 4194304 bytes (4 MiB); it is not read")
        }
    }

    /// A misspelt placement would silently drop an enforced rule: it is an error, with "did you mean".
    @Test func aPlacementThatSelectsNoClusterIsAnErrorWithDidYouMean() throws {
        try Self.withExample { folder in
            let file = folder + "/policies/global/production-hardening.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.contains("environment=production"))
            try text.replacingOccurrences(of: "environment=production", with: "environment=prodution")
                .write(toFile: file, atomically: true, encoding: .utf8)
            var workspace = Workspace.open(root: folder)
            #expect(workspace.policy == nil)
            let error = try #require(workspace.diagnostics.first { $0.isError })
            #expect(error.location.file == "policies/global/production-hardening.yaml")
            #expect(error.message.contains("'environment=prodution' selects no cluster of the fleet (3 clusters)"), "\(error)")
            #expect(error.message.contains("no cluster has environment=prodution (did you mean 'production'?)"), "\(error)")
            try text.replacingOccurrences(of: "environment=production", with: "enviroment=production")
                .write(toFile: file, atomically: true, encoding: .utf8)
            workspace = Workspace.open(root: folder)
            #expect(workspace.diagnostics.contains { $0.message.contains("no cluster has the label 'enviroment' (did you mean 'environment'?)") },
                    "\(workspace.diagnostics)")
            // a placement some cluster matches is fine
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(Workspace.open(root: folder).isValid)
        }
    }
}
