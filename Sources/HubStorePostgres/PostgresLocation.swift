import Foundation
import HubStore
import NIOSSL
import PostgresNIO

/// Where the PostgreSQL state is: `postgres://USER@HOST:PORT/DATABASE?sslmode=MODE&sslrootcert=FILE`
/// (`postgresql://` too), as libpq writes it. The password comes from, in this order: the file named by
/// `passwordFile=` in the URL, the environment variable named by `passwordEnv=` (default `PGPASSWORD`), or
/// the URL itself (accepted, never shown). `sslmode`: `disable`, `require` (encrypted, the server not
/// verified: only for a server you reach over a network you trust), `verify-full` (encrypted, the server's
/// certificate checked against `sslrootcert` or the system's CAs, and its name) — the default for any host
/// but the loopback, where it is `disable`.
public struct PostgresLocation: Sendable, Hashable {
    public enum TLSMode: String, Sendable, Hashable {
        case disable, require
        case verifyFull = "verify-full"
    }

    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode
    public var rootCertificate: String?
    public var password: String?

    /// Whether `text` names a PostgreSQL database rather than a SQLite file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// The location without its password, for every message and log.
    public var display: String {
        "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }

    /// Parses `url`; `environment` is where `passwordEnv` is looked up. Every problem is a sentence that
    /// never repeats the password.
    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(PostgresLocationError) {
        guard PostgresLocation.isURL(url), let components = URLComponents(string: url) else {
            throw PostgresLocationError("'\(PostgresLocation.redacted(url))' is not a postgres://USER@HOST:PORT/DATABASE URL")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresLocationError("\(PostgresLocation.redacted(url)) names no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresLocationError("\(PostgresLocation.redacted(url)) names no user (postgres://USER@HOST/DATABASE)")
        }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else {
            throw PostgresLocationError("\(PostgresLocation.redacted(url)) names no database (postgres://USER@HOST/DATABASE)")
        }
        self.user = user.removingPercentEncoding ?? user
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 5432
        self.database = database.removingPercentEncoding ?? database
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(self.host)
        var tls: TLSMode = loopback ? .disable : .verifyFull
        var passwordFile: String?
        var passwordEnv = "PGPASSWORD"
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable": tls = .disable
                case "require": tls = .require
                case "verify-full", "verify-ca": tls = .verifyFull
                case let other:
                    throw PostgresLocationError("sslmode '\(other)' of \(PostgresLocation.redacted(url)) is not disable, require or verify-full")
                }
            case "sslrootcert": rootCertificate = item.value
            case "passwordFile": passwordFile = item.value
            case "passwordEnv": passwordEnv = item.value ?? passwordEnv
            default:
                throw PostgresLocationError("unknown parameter '\(item.name)' in \(PostgresLocation.redacted(url)) (known: sslmode, sslrootcert, passwordFile, passwordEnv)")
            }
        }
        self.tls = tls
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile), let text = String(data: data, encoding: .utf8) else {
                throw PostgresLocationError("cannot read the password file \(passwordFile) of \(PostgresLocation.redacted(url))")
            }
            password = text.trimmingCharacters(in: .newlines)
        } else if let value = environment[passwordEnv], !value.isEmpty {
            password = value
        } else {
            password = components.password?.removingPercentEncoding
        }
    }

    /// `url` with any password replaced by `***`.
    public static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "postgres://***"
    }

    /// postgres-nio's configuration for this location.
    func configuration() throws -> PostgresConnection.Configuration {
        let mode: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable:
            mode = .disable
        case .require:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            mode = .require(try NIOSSLContext(configuration: settings))
        case .verifyFull:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .fullVerification
            if let rootCertificate {
                settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(rootCertificate))
            }
            mode = .require(try NIOSSLContext(configuration: settings))
        }
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                                             database: database, tls: mode)
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }
}

/// A state URL that cannot be used, in words.
public struct PostgresLocationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension PostgresHubStore {
    /// Connects to the database `url` names (see `PostgresLocation`).
    public convenience init(url: String) throws(HubStoreError) {
        let location: PostgresLocation
        do {
            location = try PostgresLocation(url: url)
        } catch {
            throw .cannotOpen(path: PostgresLocation.redacted(url), reason: error.description)
        }
        try self.init(location)
    }
}
