import Foundation
import PolicyCore
import Testing

/// Directory members that cannot be turned against the repository or the machine: unsafe paths are located
/// validation errors, a symbolic link is never written through, and a killed push leaves no temporary file.
@Suite struct DirectorySafetyTests {
    typealias CLI = CommandLineTests

    static func setPath(_ path: String, cluster: String = "staging-eu-1", in folder: String) throws {
        let file = folder + "/clusters/\(cluster).yaml"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            line.trimmingCharacters(in: .whitespaces).hasPrefix("path:") ? "      path: \(path)" : String(line)
        }
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
    }

    /// Every file below `folder`, relative, for "nothing changed there".
    static func listing(_ folder: String) -> [String] {
        (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []).sorted()
    }

    @Test(arguments: [
        (".", "is the repository itself"),
        ("./", "is the repository itself"),
        ("..", "contains the repository"),
        ("policies/namespaces", "lies inside policies/ of the repository"),
        ("clusters/out", "lies inside clusters/ of the repository"),
        (".git/hub", "lies inside .git/ of the repository"),
        (".policyhub/gitops/prod-eu-1", "is the same folder as the folder of directory member 'prod-eu-1'"),
        (".policyhub/gitops", "contains the folder of directory member"),
        (".policyhub/gitops/prod-us-1/inner", "lies inside the folder of directory member 'prod-us-1'"),
    ])
    func anUnsafeMemberPathIsALocatedErrorAndNothingIsWritten(path: String, message: String) throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            try Self.setPath(path, in: folder)
            let before = Self.listing(folder)
            let validate = try CLI.run(["validate", "--repo", folder])
            #expect(validate.status == 1)
            #expect(validate.stdout.contains("clusters/staging-eu-1.yaml:12:13: error: directory member 'staging-eu-1': path '\(path)' \(message)"),
                    "\(validate.stdout)")
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            // (the state file's lock files are the hub's own, taken before the tree is read)
            let written = Set(Self.listing(folder)).subtracting(before).filter { !$0.hasPrefix(".policyhub/state.sqlite") && $0 != ".policyhub" }
            #expect(written.isEmpty, "apply wrote \(written.sorted())")
            #expect(Set(before).isSubset(of: Self.listing(folder)), "apply removed files")
        }
    }

    @Test func aSymbolicLinkWhereAFolderIsExpectedIsRefusedAndNothingIsWrittenOutside() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let outside = folder + "/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
            let member = folder + "/.policyhub/gitops/staging-eu-1"
            try FileManager.default.createDirectory(atPath: member, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: member + "/namespaces", withDestinationPath: outside)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("cluster staging-eu-1: \(member)/namespaces is a symbolic link or a file where a folder is expected; refused"),
                    "\(apply.stderr)")
            #expect(Self.listing(outside).isEmpty)
        }
    }

    @Test func aSymbolicLinkWhereAFileIsExpectedIsRefusedAndItsTargetKept() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let secret = folder + "/secret.txt"
            try "keep me\n".write(toFile: secret, atomically: true, encoding: .utf8)
            let rules = folder + "/.policyhub/gitops/staging-eu-1/namespaces/demo/nvsecurityrules"
            try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: rules + "/nv.redis-pod.demo.yaml", withDestinationPath: secret)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("nv.redis-pod.demo.yaml is a symbolic link or not a regular file; refused"), "\(apply.stderr)")
            #expect(try String(contentsOfFile: secret, encoding: .utf8) == "keep me\n")
        }
    }

    @Test func aMemberFolderThatIsALinkIsRefused() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let elsewhere = folder + "/elsewhere"
            try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: folder + "/.policyhub/gitops", withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: folder + "/.policyhub/gitops/staging-eu-1", withDestinationPath: elsewhere)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 1)
            #expect(apply.stderr.contains("is a symbolic link; a member folder must be a real folder"), "\(apply.stderr)")
            #expect(Self.listing(elsewhere).isEmpty)
        }
    }

    @Test func leftoverTemporaryFilesAreSweptAndUnlabelledFilesKept() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let member = folder + "/.policyhub/gitops/staging-eu-1"
            let rules = member + "/namespaces/demo/nvsecurityrules"
            try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
            // what killed pushes leave: this hub's temporary names, and Foundation's of older versions
            for name in [".policyhub-tmp.4242.17.nv.redis-pod.demo.yaml", ".dat.nosync1234.abcd"] {
                try "half a file".write(toFile: rules + "/" + name, atomically: false, encoding: .utf8)
            }
            // a file someone else keeps there, without the hub's label, at a place no object wants
            try "apiVersion: neuvector.com/v1\nkind: NvSecurityRule\nmetadata: {name: theirs, namespace: demo}\n"
                .write(toFile: rules + "/theirs.yaml", atomically: true, encoding: .utf8)
            let apply = try CLI.run(["apply", "--repo", folder])
            #expect(apply.status == 0, "\(apply.stderr)")
            let left = Self.listing(member)
            #expect(!left.contains { $0.contains(".policyhub-tmp.") || $0.contains(".dat.nosync") }, "\(left)")
            #expect(left.contains("namespaces/demo/nvsecurityrules/theirs.yaml"))
            // a later push of a change (which sweeps instead of reading every file): leftovers go too, and a link with
            // a temporary name is neither removed nor followed
            let outside = folder + "/outside.dat"
            try "keep".write(toFile: outside, atomically: true, encoding: .utf8)
            for name in [".policyhub-tmp.4243.18.nv.nginx-pod.demo.yaml", ".dat.nosync99.x"] {
                try "half a file".write(toFile: rules + "/" + name, atomically: false, encoding: .utf8)
            }
            try FileManager.default.createSymbolicLink(atPath: member + "/.dat.nosync-link", withDestinationPath: outside)
            try ServeTests.globalRule("no-wget").write(toFile: folder + "/policies/global/no-wget.yaml", atomically: true, encoding: .utf8)
            let again = try CLI.run(["apply", "--repo", folder])
            #expect(again.status == 0, "\(again.stderr)")
            let after = Self.listing(member)
            #expect(!after.contains { $0.contains(".policyhub-tmp.") || $0.contains(".dat.nosync9") }, "\(after)")
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: member + "/.dat.nosync-link")) == outside)
            #expect(try String(contentsOfFile: outside, encoding: .utf8) == "keep")
        }
    }

    @Test func killedPushesLeaveNoTemporaryFileAndTheRerunConverges() throws {
        try Repo.withTemporaryFolder { folder in
            try Repo.copyExample(to: folder)
            let member = folder + "/.policyhub/gitops/staging-eu-1"
            for round in 0..<10 {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: CLI.binary)
                process.arguments = ["apply", "--repo", folder, "--repair"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                usleep(useconds_t(20_000 + round * 15_000))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            let rerun = try CLI.run(["apply", "--repo", folder])
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let status = try CLI.run(["status", "--repo", folder])
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            #expect(!Self.listing(member).contains { $0.contains(".policyhub-tmp.") || $0.contains(".dat.nosync") })
        }
    }
}
