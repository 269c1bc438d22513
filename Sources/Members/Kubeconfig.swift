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
    /// The user's exec credential plugin, run (when the operator allowed it) for a token or certificate.
    public var exec: ExecPlugin?
    /// Headers sent with every request: impersonation (`as`, `as-groups`, `as-uid`, `as-user-extra`).
    public var headers: [HTTPHeader]

    public init(server: String, tls: TLSSettings, token: String?, exec: ExecPlugin? = nil, headers: [HTTPHeader] = []) {
        self.server = server
        self.tls = tls
        self.token = token
        self.exec = exec
        self.headers = headers
    }
}

/// A kubeconfig that cannot be used, with the file and the reason.
public struct KubeconfigError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "kubeconfig \(path): \(message)" }
}

/// Kubeconfig files as resolved, by path, each with the digest of the bytes it was read from: validation,
/// planning and the push each resolve every member's kubeconfig, and parsing a fleet's files three times was
/// half of planning a push. A file that names no other file (no certificate, key or token file, no exec
/// plugin) resolves to the same endpoint while its bytes stay the same, so that endpoint is kept; of one
/// that names files only the parse is kept (the files it names are read each time). A file whose bytes
/// changed is read again.
final class ParsedKubeconfigs: @unchecked Sendable {
    static let shared = ParsedKubeconfigs()
    private let lock = NSLock()
    private var parsed: [String: (digest: String, config: Value)] = [:]
    private var endpoints: [String: (digest: String, endpoint: KubernetesEndpoint)] = [:]

    static func key(_ path: String, _ context: String?) -> String { path + "\u{0}" + (context ?? "") }

    func endpoint(path: String, context: String?, digest: String) -> KubernetesEndpoint? {
        lock.withLock { endpoints[ParsedKubeconfigs.key(path, context)].flatMap { $0.digest == digest ? $0.endpoint : nil } }
    }

    func remember(_ endpoint: KubernetesEndpoint, path: String, context: String?, digest: String) {
        lock.withLock {
            endpoints[ParsedKubeconfigs.key(path, context)] = (digest, endpoint)
            parsed[path] = nil  // the endpoint is what is asked for again
        }
    }

    func config(path: String, bytes: [UInt8], digest: String) -> Value? {
        lock.lock()
        let known = parsed[path]
        lock.unlock()
        if let known, known.digest == digest { return known.config }
        guard case .success(let documents) = YAMLParser.parseDocuments(bytes, file: path), let config = documents.first?.value else {
            return nil
        }
        lock.lock()
        parsed[path] = (digest, config)
        lock.unlock()
        return config
    }

    func removeAll() {
        lock.lock()
        parsed = [:]
        endpoints = [:]
        lock.unlock()
    }
}

/// Reads the kubeconfig fields the hub supports (SEMANTICS §1.1; kubernetes-wire.md §8).
public enum Kubeconfig {
    /// Forgets every parsed file (a benchmark's run then costs what a new process's does).
    public static func forgetParsedFiles() { ParsedKubeconfigs.shared.removeAll() }

    /// The endpoint of `context` (or `current-context`) in the kubeconfig at `path`.
    public static func endpoint(path: String, context wanted: String?) throws(KubeconfigError) -> KubernetesEndpoint {
        func fail(_ message: String) -> KubeconfigError { KubeconfigError(path: path, message: message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        let bytes = [UInt8](data)
        let digest = ContentHash.of(bytes: bytes)
        if let known = ParsedKubeconfigs.shared.endpoint(path: path, context: wanted, digest: digest) { return known }
        guard let config = ParsedKubeconfigs.shared.config(path: path, bytes: bytes, digest: digest) else { throw fail("is not valid YAML") }
        var namesFiles = false  // then the endpoint is resolved again each time (the files may change)
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
                namesFiles = true
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
            namesFiles = true
            let resolved = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
            guard let text = try? String(contentsOfFile: resolved, encoding: .utf8) else {
                throw fail("tokenFile \(resolved) cannot be read")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if user["auth-provider"] != nil {
            let provider = user["auth-provider"]?["name"]?.stringValue ?? "?"
            let replacement = ["gcp": "gke-gcloud-auth-plugin", "azure": "kubelogin (azure.github.io/kubelogin)", "oidc": "kubelogin (int128/kubelogin)"][provider]
            throw fail("user's auth-provider '\(provider)' was removed from Kubernetes (1.26); use its exec credential plugin\(replacement.map { ", \($0)," } ?? "") instead")
        }
        if user["username"] != nil || user["password"] != nil {
            throw fail("user has username/password (basic auth), which Kubernetes removed in 1.19; use a token, a client certificate or an exec plugin")
        }
        if user["exec"] != nil { namesFiles = true }
        let exec = try user["exec"].map { value throws(KubeconfigError) in
            try execPlugin(value, user: context["user"]?.stringValue ?? "", cluster: cluster, folder: base, fail: fail)
        }
        var headers: [HTTPHeader] = []
        if let name = user["as"]?.stringValue, !name.isEmpty { headers.append(HTTPHeader("Impersonate-User", name)) }
        if case .list(let groups)? = user["as-groups"] {
            for group in groups.compactMap(\.stringValue) { headers.append(HTTPHeader("Impersonate-Group", group)) }
        }
        if let uid = user["as-uid"]?.stringValue, !uid.isEmpty { headers.append(HTTPHeader("Impersonate-Uid", uid)) }
        if case .map(let extras)? = user["as-user-extra"] {
            for entry in extras {
                let values: [String]
                if case .list(let items) = entry.value { values = items.compactMap(\.stringValue) } else { values = [entry.value.stringValue ?? ""] }
                for value in values { headers.append(HTTPHeader("Impersonate-Extra-\(RequestURL.segment(entry.key))", value)) }
            }
        }
        if let proxy = cluster["proxy-url"]?.stringValue, !proxy.isEmpty {
            guard let scheme = RequestURL.scheme(of: proxy), ["http", "https", "socks5"].contains(scheme) else {
                throw fail("proxy-url \(RequestURL.redacted(proxy)) is not an http, https or socks5 URL")
            }
            tls.proxy = proxy
        }
        if cluster["disable-compression"] == .bool(true) { tls.compression = false }
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
        let endpoint = KubernetesEndpoint(server: url, tls: tls, token: token, exec: exec, headers: headers)
        if !namesFiles { ParsedKubeconfigs.shared.remember(endpoint, path: path, context: wanted, digest: digest) }
        return endpoint
    }

    /// A user's `exec` entry, checked as client-go checks it.
    static func execPlugin(_ value: Value, user: String, cluster: Value, folder: String,
                           fail: (String) -> KubeconfigError) throws(KubeconfigError) -> ExecPlugin {
        guard let apiVersion = value["apiVersion"]?.stringValue, ExecPlugin.apiVersions.contains(apiVersion) else {
            throw fail("user '\(user)': exec apiVersion must be \(ExecPlugin.apiVersions.joined(separator: " or ")) (client.authentication.k8s.io/v1alpha1 is gone)")
        }
        guard let command = value["command"]?.stringValue, !command.isEmpty else { throw fail("user '\(user)': exec has no command") }
        var args: [String] = []
        if case .list(let items)? = value["args"] { args = items.map { $0.stringValue ?? "" } }
        var env: [ExecPlugin.Variable] = []
        if case .list(let items)? = value["env"] {
            for item in items {
                guard let name = item["name"]?.stringValue, let text = item["value"]?.stringValue else {
                    throw fail("user '\(user)': every exec env entry needs name and value")
                }
                env.append(ExecPlugin.Variable(name: name, value: text))
            }
        }
        let mode: ExecPlugin.InteractiveMode
        if let text = value["interactiveMode"]?.stringValue {
            guard let parsed = ExecPlugin.InteractiveMode(rawValue: text) else {
                throw fail("user '\(user)': exec interactiveMode must be Never, IfAvailable or Always, not '\(text)'")
            }
            mode = parsed
        } else if apiVersion == "client.authentication.k8s.io/v1" {
            throw fail("interactiveMode must be specified for \(user) to use exec authentication plugin")
        } else {
            mode = .ifAvailable
        }
        var info = ValueMapBuilder()
        info.set("server", cluster["server"] ?? .null)
        info.set("tls-server-name", cluster["tls-server-name"])
        info.set("insecure-skip-tls-verify", cluster["insecure-skip-tls-verify"])
        info.set("certificate-authority-data", cluster["certificate-authority-data"])
        info.set("proxy-url", cluster["proxy-url"])
        info.set("disable-compression", cluster["disable-compression"])
        if case .list(let extensions)? = cluster["extensions"],
           let config = extensions.first(where: { $0["name"]?.stringValue == "client.authentication.k8s.io/exec" })?["extension"] {
            info.set("config", config)
        }
        return ExecPlugin(user: user, apiVersion: apiVersion, command: command,
                          resolvedPath: ExecPlugin.resolve(command, kubeconfigFolder: folder), args: args, env: env,
                          installHint: value["installHint"]?.stringValue, provideClusterInfo: value["provideClusterInfo"] == .bool(true),
                          interactiveMode: mode, clusterInfo: info.value)
    }
}
