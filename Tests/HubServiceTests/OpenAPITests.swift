import Foundation
import HubService
import PolicyYAML
import Testing

@Suite struct OpenAPITests {
    static let path: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/openapi.yaml"
    }()

    /// Every route the server answers is in openapi.yaml with its method, and nothing else is.
    @Test func theDocumentListsExactlyTheRoutes() throws {
        let bytes = try #require(FileManager.default.contents(atPath: Self.path))
        guard case .success(let nodes) = YAMLParser.parseDocuments([UInt8](bytes), file: Self.path), let document = nodes.first else {
            Issue.record("openapi.yaml is not valid YAML")
            return
        }
        let root = document.value
        #expect(root["openapi"]?.stringValue?.hasPrefix("3.") == true)
        guard case .map(let paths)? = root["paths"] else {
            Issue.record("no paths")
            return
        }
        var documented = Set<String>()
        for path in paths {
            guard case .map(let operations) = path.value else { continue }
            for operation in operations where ["get", "put", "post", "delete", "patch"].contains(operation.key) {
                documented.insert("\(operation.key.uppercased()) \(path.key)")
                // every authenticated operation documents 401; open ones say security: []
                let security = operation.value["security"]
                let open = security == .list([])
                #expect(open || operation.value["responses"]?["401"] != nil, "\(operation.key) \(path.key) lacks 401")
            }
        }
        let served = Set(HubAPI.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        // open routes are exactly the ones without access
        for route in HubAPI.routes {
            let operation = root["paths"]?[route.path]?[route.method.rawValue.lowercased()]
            #expect((operation?["security"] == .list([])) == (route.access(namespace: "ns") == nil), "\(route.path)")
        }
    }
}
