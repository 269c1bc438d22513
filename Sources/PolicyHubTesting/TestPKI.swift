import Foundation

/// A throwaway certificate authority with a server certificate for 127.0.0.1/localhost and a client
/// certificate, made with the `openssl` command for tests and benchmarks. PEM bytes and file paths.
public struct TestPKI: Sendable {
    public var folder: String
    public var caCertificate: [UInt8]
    public var serverCertificate: [UInt8]
    public var serverKey: [UInt8]
    public var clientCertificate: [UInt8]
    public var clientKey: [UInt8]
    /// A client certificate from a CA the server does not trust.
    public var strangerCertificate: [UInt8]
    public var strangerKey: [UInt8]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes the CA and certificates in `folder` (created when missing).
    public static func make(in folder: String) throws -> TestPKI {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: folder)
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw Failure(description: "openssl \(arguments.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))")
            }
        }
        let days = "2"
        for ca in ["ca", "stranger-ca"] {
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(ca).key", "-out", "\(ca).crt",
                         "-days", days, "-subj", "/CN=policyhub-test-\(ca)"])
        }
        try "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
            .write(toFile: folder + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: folder + "/client.ext", atomically: true, encoding: .utf8)
        for (name, ca, subject, ext) in [("server", "ca", "/CN=kube-apiserver", "server.ext"),
                                         ("client", "ca", "/O=policyhub/CN=policyhub-hub", "client.ext"),
                                         ("stranger", "stranger-ca", "/CN=stranger", "client.ext")] {
            try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
            try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).crt", "-CAkey", "\(ca).key", "-CAcreateserial",
                         "-out", "\(name).crt", "-days", days, "-extfile", ext])
        }
        func read(_ name: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: folder + "/" + name) else {
                throw Failure(description: "openssl did not write \(name)")
            }
            return [UInt8](data)
        }
        return TestPKI(folder: folder, caCertificate: try read("ca.crt"), serverCertificate: try read("server.crt"),
                       serverKey: try read("server.key"), clientCertificate: try read("client.crt"),
                       clientKey: try read("client.key"), strangerCertificate: try read("stranger.crt"),
                       strangerKey: try read("stranger.key"))
    }
}
