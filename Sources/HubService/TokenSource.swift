import Foundation
import Logging

/// The tokens file as the daemon uses it: read again whenever it changes on disk (a `stat` per request),
/// so a token created, revoked or expired takes effect without a restart. A file that no longer reads
/// keeps the previous tokens in force and is named in the log.
public final class TokenSource: @unchecked Sendable {
    public let path: String
    private let logger: Logger
    private let lock = NSLock()
    private var file: TokenFile
    private var stamp: Stamp?

    /// What says that the file changed: its inode, size and modification time.
    struct Stamp: Equatable {
        var inode: UInt64
        var size: Int64
        var seconds: Int
        var nanoseconds: Int
    }

    /// Reads the file once; throws `ConfigError` when it cannot be read.
    public init(path: String, logger: Logger) throws(ConfigError) {
        self.path = path
        self.logger = logger
        stamp = TokenSource.stamp(path)
        file = try TokenFile.load(path: path)
    }

    static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Stamp(inode: UInt64(info.st_ino), size: Int64(info.st_size), seconds: info.st_mtim.tv_sec,
                     nanoseconds: info.st_mtim.tv_nsec)
    }

    /// The tokens in force now.
    public func current() -> TokenFile {
        let now = TokenSource.stamp(path)
        lock.lock()
        defer { lock.unlock() }
        if now != stamp {
            stamp = now
            do throws(ConfigError) {
                file = try TokenFile.load(path: path)
                logger.info("tokens file \(path) read again: \(file.entries.count) token\(file.entries.count == 1 ? "" : "s")")
            } catch {
                logger.error("tokens file changed but does not read (\(error)); the previous tokens stay in force")
            }
        }
        return file
    }

    /// Reads the file now (SIGHUP), whatever its stamp; returns the problem when it does not read.
    @discardableResult
    public func reload() -> ConfigError? {
        lock.lock()
        defer { lock.unlock() }
        stamp = TokenSource.stamp(path)
        do throws(ConfigError) {
            file = try TokenFile.load(path: path)
            return nil
        } catch {
            logger.error("tokens file does not read (\(error)); the previous tokens stay in force")
            return error
        }
    }
}
