import Foundation
import HubTransport
import PolicyCore
import PolicyYAML

/// How to reach one Kubernetes API server, resolved from a kubeconfig and a context.
public struct KubernetesEndpoint: Sendable {
    /// `server`, without a trailing slash (a path prefix is kept).
    public var server: String
    public var tls: TLSSettings
    /// A bearer token (from `tokenFile` when both are set, as client-go does).
    public var token: String?

    public init(server: String, tls: TLSSettings, token: String?) {
        self.server = server
        self.tls = tls
        self.token = token
    }
}

/// A kubeconfig that cannot be used, with the file and the reason.
public struct KubeconfigError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "kubeconfig \(path): \(message)" }
}

/// Reads the kubeconfig fields the hub supports (SEMANTICS §1.1; kubernetes-wire.md §8).
public enum Kubeconfig {
    /// The endpoint of `context` (or `current-context`) in the kubeconfig at `path`.
    public static func endpoint(path: String, context wanted: String?) throws(KubeconfigError) -> KubernetesEndpoint {
        func fail(_ message: String) -> KubeconfigError { KubeconfigError(path: path, message: message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        guard case .success(let documents) = YAMLParser.parseDocuments([UInt8](data), file: path),
              let config = documents.first?.value else { throw fail("is not valid YAML") }
        let base = (path as NSString).deletingLastPathComponent
        func named(_ list: String, _ name: String, _ field: String) -> Value? {
            guard case .list(let items)? = config[list] else { return nil }
            return items.first { $0["name"]?.stringValue == name }?[field]
        }
        guard let contextName = wanted ?? config["current-context"]?.stringValue, !contextName.isEmpty else {
            throw fail("has no current-context and no context was given")
        }
        guard let context = named("contexts", contextName, "context") else { throw fail("has no context '\(contextName)'") }
        guard let clusterName = context["cluster"]?.stringValue, let cluster = named("clusters", clusterName, "cluster") else {
            throw fail("context '\(contextName)' names no cluster that the file defines")
        }
        let user = context["user"]?.stringValue.flatMap { named("users", $0, "user") } ?? .map([])
        guard let server = cluster["server"]?.stringValue, !server.isEmpty else {
            throw fail("cluster '\(clusterName)' has no server")
        }
        func blob(_ dataKey: String, _ fileKey: String, in value: Value) throws(KubeconfigError) -> (bytes: [UInt8]?, file: String?) {
            if let encoded = value[dataKey]?.stringValue {
                guard let decoded = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) else {
                    throw fail("\(dataKey) is not base64")
                }
                return ([UInt8](decoded), nil)
            }
            if let file = value[fileKey]?.stringValue {
                let resolved = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
                guard FileManager.default.isReadableFile(atPath: resolved) else { throw fail("\(fileKey) \(resolved) cannot be read") }
                return (nil, resolved)
            }
            return (nil, nil)
        }
        var tls = TLSSettings()
        let ca = try blob("certificate-authority-data", "certificate-authority", in: cluster)
        tls.caPEM = ca.bytes
        tls.caFile = ca.file
        if cluster["insecure-skip-tls-verify"] == .bool(true) {
            if ca.bytes != nil || ca.file != nil {
                throw fail("specifying a root certificates file with the insecure flag is not allowed (as kubectl says)")
            }
            tls.verifyPeer = false
        }
        let certificate = try blob("client-certificate-data", "client-certificate", in: user)
        let key = try blob("client-key-data", "client-key", in: user)
        tls.clientCertificatePEM = certificate.bytes
        tls.clientCertificateFile = certificate.file
        tls.clientKeyPEM = key.bytes
        tls.clientKeyFile = key.file
        var token = user["token"]?.stringValue
        if let file = user["tokenFile"]?.stringValue {
            let resolved = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
            guard let text = try? String(contentsOfFile: resolved, encoding: .utf8) else {
                throw fail("tokenFile \(resolved) cannot be read")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var url = server
        while url.hasSuffix("/") { url.removeLast() }
        let printable = RequestURL.redacted(server)  // a password in the URL is never printed or stored
        switch RequestURL.scheme(of: url) {
        case "http"?:
            if token != nil || certificate.bytes != nil || certificate.file != nil {
                throw fail("server \(printable) is plain http://; the hub refuses to send credentials without TLS")
            }
        case "https"?:
            break
        default:
            throw fail("server \(printable) is not an http(s) URL")
        }
        if let scheme = url.range(of: "://") {  // schemes are case-insensitive: HTTPS:// is https://
            url = url[..<scheme.lowerBound].lowercased() + url[scheme.lowerBound...]
        }
        if let serverName = cluster["tls-server-name"]?.stringValue, let components = URLComponents(string: url),
           let host = components.host {
            let port = components.port ?? 443
            tls.connectTo = ["\(serverName):\(port):\(host):\(port)"]
            var rewritten = components
            rewritten.host = serverName
            url = rewritten.string ?? url
        }
        return KubernetesEndpoint(server: url, tls: tls, token: token)
    }
}
