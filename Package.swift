// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "PolicyHub",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "policyhub", targets: ["policyhub"]),
        .executable(name: "policyhub-bench", targets: ["PolicyHubBench"]),
        .library(name: "PolicyCore", targets: ["PolicyCore"]),
        .library(name: "PolicyYAML", targets: ["PolicyYAML"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The system libyaml (apt: libyaml-dev). Named CYAML, not CYaml, to stay clear of Yams' vendored copy.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(name: "PolicyCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "PolicyYAML", dependencies: ["PolicyCore", "CYAML"]),
        // Revisions, environments, cluster state, pushes and the audit log in the system SQLite.
        .target(name: "HubStore", dependencies: ["PolicyCore", .product(name: "GRDB", package: "GRDB.swift")]),
        // The same state in PostgreSQL (Debian's server, through postgres-nio): for several replicas of the daemon.
        .target(name: "HubStorePostgres", dependencies: [
            "PolicyCore", "HubStore", .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Logging", package: "swift-log"),
        ]),
        // The system libcurl (apt: libcurl4-openssl-dev) and a C shim for its variadic setopt/getinfo.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        // HTTP over libcurl: TLS from files or memory, timeouts, retries, many transfers at once.
        .target(name: "HubTransport", dependencies: ["CCurl", "CCurlShim"]),
        // Where effective policy is pushed: GitOps folders (Kubernetes members come with the transport).
        .target(name: "Members", dependencies: ["PolicyCore", "PolicyYAML", "HubTransport", "CThreadShim"]),
        // The engine under both shells: repository and workspace, session and state lock, push plan and run,
        // promotion and gates, rollback, drift, status, document writes; typed inputs, results and errors.
        .target(name: "HubEngine", dependencies: ["PolicyCore", "PolicyYAML", "HubStore", "HubStorePostgres", "Members", "HubTransport",
                                                 .product(name: "Crypto", package: "swift-crypto")]),
        // The daemon: REST API, tokens and roles, scheduler, metrics, webhook. The hub's operations come in
        // through the HubOperations protocol; the CLI supplies the live ones.
        // gettid for per-thread priorities (the daemon's API threads run below pushes).
        .target(name: "CThreadShim"),
        .target(name: "HubService", dependencies: [
            "PolicyCore", "PolicyYAML", "HubTransport", "HubEngine", "HubStore", "HubStorePostgres", "Members", "CThreadShim",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .target(name: "PolicyHubCLI", dependencies: [
            "PolicyCore", "PolicyYAML", "HubStore", "HubStorePostgres", "Members", "HubTransport", "HubEngine", "HubService",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "policyhub", dependencies: ["PolicyHubCLI"]),
        // The benchmarks (`policyhub-bench`): the only executable that links the test doubles.
        .executableTarget(name: "PolicyHubBench", dependencies: [
            "PolicyCore", "PolicyYAML", "PolicyHubCLI", "PolicyHubTesting", "HubTransport", "Members", "HubEngine", "HubService",
            "HubStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
        ]),
        // Generators and doubles for tests and benchmarks (`policyhub-bench`), never linked into `policyhub`.
        .target(name: "PolicyHubTesting", dependencies: [
            "PolicyCore", "PolicyYAML",
            .product(name: "X509", package: "swift-certificates"), .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        ]),
        .testTarget(name: "PolicyCoreTests", dependencies: ["PolicyCore"]),
        // Fixtures and case files are read from the source tree by path, not bundled.
        .testTarget(name: "PolicyYAMLTests", dependencies: ["PolicyCore", "PolicyYAML"], exclude: ["Fixtures"]),
        .testTarget(name: "PolicyEngineTests", dependencies: ["PolicyCore", "PolicyYAML", "PolicyHubTesting"],
                    exclude: ["Cases"]),
        .testTarget(name: "HubStoreTests", dependencies: ["PolicyCore", "HubStore", "HubStorePostgres", "PolicyHubTesting"]),
        .testTarget(name: "HubEngineTests", dependencies: ["PolicyCore", "PolicyYAML", "HubStore", "HubEngine", "HubService",
                                                           .product(name: "Hummingbird", package: "hummingbird"),
                                                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                                                           .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MembersTests", dependencies: ["PolicyCore", "PolicyYAML", "Members", "HubTransport",
                                                         "PolicyHubTesting"]),
        .testTarget(name: "HubTransportTests", dependencies: ["HubTransport", "PolicyHubTesting"]),
        .testTarget(name: "HubServiceTests", dependencies: ["HubService", "HubEngine", "PolicyCore", "PolicyYAML"]),
        .testTarget(name: "PolicyHubCLITests", dependencies: ["PolicyCore", "PolicyYAML", "PolicyHubCLI", "HubStore",
                                                             "HubEngine", "PolicyHubTesting", "HubService", "HubTransport",
                                                             .product(name: "Crypto", package: "swift-crypto"),
                                                             .product(name: "Hummingbird", package: "hummingbird"),
                                                             .product(name: "Logging", package: "swift-log")],
                    exclude: ["Golden", "Schemas"]),
    ]
)
