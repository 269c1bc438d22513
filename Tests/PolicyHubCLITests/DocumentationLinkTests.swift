import Foundation
import Testing

/// The README stands alone (issue 17): every link of README.md, docs/ and runbooks/ leads to a file of
/// this repository (and, with `#anchor`, to a heading of it) or to a public web page; nothing points
/// outside a clone, such as the `../shared` folder the project was designed from.
@Suite struct DocumentationLinkTests {
    static var pages: [String] {
        let root = Repo.root
        var pages = ["README.md"]
        for folder in ["docs", "runbooks"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + folder)) ?? []
            pages += names.filter { $0.hasSuffix(".md") }.sorted().map { folder + "/" + $0 }
        }
        return pages
    }

    /// The markdown links `[text](target)` of `text`, outside fenced code blocks.
    static func links(_ text: String) -> [String] {
        var links: [String] = []
        var fenced = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") { fenced.toggle() }
            if fenced { continue }
            var rest = Substring(line)
            while let open = rest.range(of: "](") {
                let after = rest[open.upperBound...]
                guard let close = after.firstIndex(of: ")") else { break }
                links.append(String(after[..<close]))
                rest = after[after.index(after: close)...]
            }
        }
        return links
    }

    /// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().compactMap { character -> Character? in
            if character == " " { return "-" }
            if character.isLetter || character.isNumber || character == "-" || character == "_" { return character }
            return nil
        })
    }

    static func anchors(_ text: String) -> Set<String> {
        var fenced = false
        var found = Set<String>()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("```") { fenced.toggle() }
            if !fenced, line.hasPrefix("#") {
                found.insert(anchor(line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)))
            }
        }
        return found
    }

    @Test func theDocsFolderCoversTheContract() {
        for page in ["docs/README.md", "docs/precedence.md", "docs/promotion.md", "docs/drift.md", "docs/push.md",
                     "docs/validation.md", "docs/repository.md"] {
            #expect(FileManager.default.fileExists(atPath: Repo.root + "/" + page), "\(page) is missing")
        }
        #expect(Self.pages.count >= 10)
    }

    @Test func everyLinkLeadsInsideTheRepositoryOrToTheWeb() throws {
        let root = URL(fileURLWithPath: Repo.root).standardizedFileURL.resolvingSymlinksInPath().path
        var checked = 0
        for page in Self.pages {
            let text = try String(contentsOfFile: root + "/" + page, encoding: .utf8)
            #expect(!text.contains("../shared"), "\(page) refers to ../shared, which a clone does not have")
            #expect(!text.contains("/work/"), "\(page) refers to a path of the machine it was written on")
            for link in Self.links(text) {
                checked += 1
                if link.hasPrefix("https://") || link.hasPrefix("http://") || link.hasPrefix("mailto:") { continue }
                let parts = link.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
                let path = String(parts[0]), fragment = parts.count > 1 ? String(parts[1]) : nil
                let folder = (page as NSString).deletingLastPathComponent
                let target = path.isEmpty ? page : (folder.isEmpty ? path : folder + "/" + path)
                let resolved = URL(fileURLWithPath: root + "/" + target).standardizedFileURL.resolvingSymlinksInPath().path
                #expect(resolved == root || resolved.hasPrefix(root + "/"), "\(page): \(link) leads outside the repository")
                #expect(FileManager.default.fileExists(atPath: resolved), "\(page): \(link) names no file of the repository")
                if let fragment, resolved.hasSuffix(".md"), let linked = try? String(contentsOfFile: resolved, encoding: .utf8) {
                    #expect(Self.anchors(linked).contains(fragment), "\(page): \(link) names no heading of \(target)")
                }
            }
        }
        #expect(checked > 20, "only \(checked) links found: is the link reader broken?")
    }

    @Test func theCheckCatchesABrokenLink() {
        #expect(Self.links("see [a](docs/x.md#y) and [b](https://e.org)\n```\n[c](z)\n```\n") == ["docs/x.md#y", "https://e.org"])
        #expect(Self.anchor("8. Conflicts") == "8-conflicts")
        #expect(Self.anchor("In a CI pipeline") == "in-a-ci-pipeline")
        #expect(Self.anchors("# A b\n```\n# not\n```\n## `serve` it\n") == ["a-b", "serve-it"])
    }
}
