import Foundation
import HubEngine
import PolicyCore
import PolicyHubCLI
import Testing

/// The rendered example fleet is pinned byte for byte. Re-record on purpose only:
/// `POLICYHUB_RECORD_GOLDEN=1 swift test --filter GoldenTests`, then review the diff.
@Suite struct GoldenTests {
    static let folder = Repo.root + "/Tests/PolicyHubCLITests/Golden"

    @Test(arguments: ["render.json", "render.yaml"])
    func exampleRenderMatchesGolden(_ name: String) throws {
        let workspace = Workspace.open(root: Repo.root)
        let renderer = try #require(workspace.renderer(revision: "golden"))
        let fleet = try #require(workspace.fleet)
        let rendered = renderer.render(clusters: fleet.clusters)
        let output = name.hasSuffix(".json") ? RenderOutput.json(rendered) : RenderOutput.yaml(rendered)
        let path = GoldenTests.folder + "/" + name
        if ProcessInfo.processInfo.environment["POLICYHUB_RECORD_GOLDEN"] == "1" {
            try output.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOfFile: path, encoding: .utf8)
        #expect(output == golden, "render differs from \(path); re-record only if the change is intended")
    }
}
