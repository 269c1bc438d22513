import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority with a server certificate for 127.0.0.1/localhost and a client
/// certificate, made in memory with apple/swift-certificates (P-256 keys, valid two days) for tests and
/// benchmarks; PEM bytes, also written to `folder` for the tools that read files (kubectl).
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

    /// One issuer: its key and name.
    struct Authority {
        var key: P256.Signing.PrivateKey
        var name: DistinguishedName
        var certificate: Certificate
    }

    static func authority(_ commonName: String, now: Date) throws -> Authority {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 300, notValidAfter: now + 2 * 86400, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(key))
        return Authority(key: key, name: name, certificate: certificate)
    }

    /// A leaf certificate signed by `issuer`, and its key.
    static func leaf(_ subject: DistinguishedName, issuer: Authority, now: Date, server: Bool) throws
        -> (certificate: Certificate, key: P256.Signing.PrivateKey)
    {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 300, notValidAfter: now + 2 * 86400, issuer: issuer.name, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                if server {
                    try ExtendedKeyUsage([.serverAuth])
                    SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost"),
                                             .dnsName("kubernetes.default.svc"),
                                             // the double's virtual clusters on hosts of their own (KubernetesAPIDouble.url)
                                             .dnsName("*.clusters.localhost")])
                } else {
                    try ExtendedKeyUsage([.clientAuth])
                }
            },
            issuerPrivateKey: .init(issuer.key))
        return (certificate, key)
    }

    /// Makes the CA and certificates (and writes them to `folder`, created when missing).
    public static func make(in folder: String) throws -> TestPKI {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let now = Date()
        let ca = try authority("policyhub-test-ca", now: now)
        let stranger = try authority("policyhub-test-stranger-ca", now: now)
        let server = try leaf(try DistinguishedName { CommonName("kube-apiserver") }, issuer: ca, now: now, server: true)
        let client = try leaf(try DistinguishedName {
            OrganizationName("policyhub")
            CommonName("policyhub-hub")
        }, issuer: ca, now: now, server: false)
        let strangerClient = try leaf(try DistinguishedName { CommonName("stranger") }, issuer: stranger, now: now, server: false)
        func pem(_ certificate: Certificate) throws -> [UInt8] { Array(try certificate.serializeAsPEM().pemString.utf8) + [0x0a] }
        func pem(_ key: P256.Signing.PrivateKey) -> [UInt8] { Array(key.pemRepresentation.utf8) + [0x0a] }
        let files: [(String, [UInt8])] = [
            ("ca.crt", try pem(ca.certificate)), ("ca.key", pem(ca.key)),
            ("stranger-ca.crt", try pem(stranger.certificate)), ("stranger-ca.key", pem(stranger.key)),
            ("server.crt", try pem(server.certificate)), ("server.key", pem(server.key)),
            ("client.crt", try pem(client.certificate)), ("client.key", pem(client.key)),
            ("stranger.crt", try pem(strangerClient.certificate)), ("stranger.key", pem(strangerClient.key)),
        ]
        for (name, bytes) in files {
            guard FileManager.default.createFile(atPath: folder + "/" + name, contents: Data(bytes)) else {
                throw Failure(description: "cannot write \(folder)/\(name)")
            }
        }
        let byName = Dictionary(uniqueKeysWithValues: files)
        func bytes(_ name: String) -> [UInt8] { byName[name] ?? [] }
        return TestPKI(folder: folder, caCertificate: bytes("ca.crt"), serverCertificate: bytes("server.crt"),
                       serverKey: bytes("server.key"), clientCertificate: bytes("client.crt"), clientKey: bytes("client.key"),
                       strangerCertificate: bytes("stranger.crt"), strangerKey: bytes("stranger.key"))
    }
}
