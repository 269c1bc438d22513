#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A member folder opened so that nothing inside it can send a write elsewhere: every path is walked one
/// component at a time from the folder's descriptor with `O_NOFOLLOW`, a symbolic link where a folder or a
/// file is expected is refused, files are written to a temporary name beside their place and renamed over
/// it, and only regular files are ever removed.
struct SafeFolder {
    let root: String
    let cluster: String
    /// Names of this hub's temporary files (and of Foundation's, which older versions left behind).
    static let temporaryPrefixes = [".policyhub-tmp.", ".dat.nosync"]

    func error(_ message: String) -> MemberError { MemberError(cluster: cluster, message: message) }

    static func reason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// The folder's descriptor, the folder made first when `create` and it does not exist; nil when it does not
    /// exist and `create` is false. A symbolic link at the folder's own place is refused.
    func openRoot(create: Bool) throws(MemberError) -> Int32? {
        var info = stat()
        if lstat(root, &info) != 0 {
            guard errno == ENOENT else { throw error("cannot read \(root): \(SafeFolder.reason())") }
            guard create else { return nil }
            do {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            } catch {
                throw self.error("cannot create \(root): \(error.localizedDescription)")
            }
        } else if info.st_mode & S_IFMT == S_IFLNK {
            throw error("\(root) is a symbolic link; a member folder must be a real folder (refused, nothing written)")
        }
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw error("cannot open \(root): \(SafeFolder.reason())") }
        return fd
    }

    /// The descriptor of folder `components` below `parent`, each made when missing and `create`; nil when
    /// one is missing and `create` is false. The caller closes it.
    func openFolder(_ parent: Int32, _ components: [String], create: Bool) throws(MemberError) -> Int32? {
        var fd = dup(parent)
        var walked = root
        for component in components {
            walked += "/" + component
            if create, mkdirat(fd, component, 0o755) != 0, errno != EEXIST {
                let reason = SafeFolder.reason()
                close(fd)
                throw error("cannot create \(walked): \(reason)")
            }
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            close(fd)
            guard next >= 0 else {
                if code == ENOENT && !create { return nil }
                if code == ELOOP || code == ENOTDIR {
                    throw error("\(walked) is a symbolic link or a file where a folder is expected; refused, nothing written through it")
                }
                throw error("cannot open \(walked): \(SafeFolder.reason(code))")
            }
            fd = next
        }
        return fd
    }

    /// The folder of the last file handled, kept open for the next: a push handles its files in identity order,
    /// so those of one folder come together, and opening every folder of a path again for each file was a tenth
    /// of a push. The caller closes it.
    struct Cursor {
        let folder: SafeFolder
        let root: Int32
        private var components: [String]?
        private var fd: Int32 = -1

        init(folder: SafeFolder, root: Int32) {
            self.folder = folder
            self.root = root
        }

        /// The descriptor of folder `components` below the root (`SafeFolder.openFolder`), valid until the next call.
        mutating func open(_ components: [String], create: Bool) throws(MemberError) -> Int32? {
            if components == self.components { return fd }
            close()
            guard let next = try folder.openFolder(root, components, create: create) else { return nil }
            self.components = components
            fd = next
            return next
        }

        mutating func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
            components = nil
        }
    }

    /// A file written under a temporary name beside `name`, not yet in place (`place`).
    struct Staged {
        var temporary: String
        var name: String
        var path: String
    }

    /// Writes `bytes` to a temporary file in folder `fd` (created exclusively, never through a link), without
    /// flushing: `flush` then `place` put a batch in place with one flush instead of one per file. A symbolic
    /// link at `name` is refused; the temporary file never outlives a failure.
    func stage(_ bytes: [UInt8], name: String, in fd: Int32, shownAs path: String) throws(MemberError) -> Staged {
        var info = stat()
        if fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT != S_IFREG {
            throw error("\(path) is a symbolic link or not a regular file; refused, nothing written through it")
        }
        let temporary = "\(SafeFolder.temporaryPrefixes[0])\(getpid()).\(UInt32.random(in: 0 ... .max)).\(name)"
        let out = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw error("cannot write \(path): \(SafeFolder.reason())") }
        var written = 0
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }  // nothing to write
            while written < buffer.count {
                let n = Glibc.write(out, base + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = SafeFolder.reason()
                    return
                }
                written += n
            }
        }
        close(out)
        if let failure {
            unlinkat(fd, temporary, 0)
            throw error("cannot write \(path): \(failure)")
        }
        return Staged(temporary: temporary, name: name, path: path)
    }

    /// Flushes the file system holding folder `fd` (the staged files' bytes, or the renames that placed them).
    func flush(_ fd: Int32) throws(MemberError) {
        let code = SafeFolder.flushes.flush(fd)
        guard code == 0 else { throw error("cannot flush \(root): \(SafeFolder.reason(code))") }
    }

    /// The flushes of this process's pushes, shared (`FileSystemFlushes`).
    static let flushes = FileSystemFlushes()

    /// Renames a staged file over `name` in folder `fd` (the same folder it was staged in); removes it on failure.
    func place(_ staged: Staged, in fd: Int32) throws(MemberError) {
        guard renameat(fd, staged.temporary, fd, staged.name) == 0 else {
            let failure = SafeFolder.reason()
            unlinkat(fd, staged.temporary, 0)
            throw error("cannot write \(staged.path): \(failure)")
        }
    }

    /// Removes staged files that will not be placed (a failure part way through a batch).
    func discard(_ staged: Staged, in fd: Int32) { unlinkat(fd, staged.temporary, 0) }

    /// The bytes of regular file `name` in folder `fd` (never through a link), or nil when it is not one.
    func read(_ name: String, in fd: Int32, limit: Int = 4 << 20) -> [UInt8]? {
        let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var info = stat()
        guard fstat(file, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= limit else { return nil }
        var out = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.read(file, base + done, buffer.count - done)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    /// Removes regular file `name` from folder `fd`; a link or folder there is refused.
    func remove(_ name: String, in fd: Int32, shownAs path: String) throws(MemberError) {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw error("cannot remove \(path): \(SafeFolder.reason())")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw error("\(path) is not a regular file; refused, not removed") }
        guard unlinkat(fd, name, 0) == 0 else { throw error("cannot remove \(path): \(SafeFolder.reason())") }
    }

    /// One regular file found by `walk`.
    struct Entry {
        var relative: String
        var bytes: [UInt8]
    }

    /// Every regular `.yaml` file below the folder (never following a link), and removes this hub's leftover
    /// temporary files when `sweep` (a push killed between write and rename leaves one).
    func walk(sweep: Bool) throws(MemberError) -> [Entry] {
        guard let fd = try openRoot(create: false) else {
            if sweep { SafeFolder.swept.insert(root) }  // no folder, no leftover
            return []
        }
        defer { close(fd) }
        var out: [Entry] = []
        visit(fd, prefix: "", depth: 0) { fd, name, relative, _ in
            if SafeFolder.temporaryPrefixes.contains(where: { name.hasPrefix($0) }) {
                if sweep { unlinkat(fd, name, 0) }
            } else if name.hasSuffix(".yaml"), let bytes = read(name, in: fd) {
                out.append(Entry(relative: relative, bytes: bytes))
            }
        }
        if sweep { SafeFolder.swept.insert(root) }
        return out.sorted { $0.relative < $1.relative }
    }

    /// Removes this hub's leftover temporary files below the folder (without reading any other file) when one
    /// can be there: a push was interrupted (its marker is still in the
    /// folder), or this process has not swept it yet (a hub of an older version, which left no marker). A walk of
    /// every folder at every push was a sixth of a one-document change to 1,000 GitOps folders.
    func sweepIfInterrupted() throws(MemberError) {
        guard let fd = try openRoot(create: false) else { return }
        defer { close(fd) }
        var info = stat()
        guard !SafeFolder.swept.contains(root) || fstatat(fd, SafeFolder.pushMarker, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        sweepFolder(fd, depth: 0)
        SafeFolder.swept.insert(root)
    }

    /// The file a push keeps in the folder's root while it has temporary files below it: made before the first
    /// one, removed once all are in place and flushed, so a push killed in between leaves it and the next push
    /// sweeps. It carries the temporary prefix, so a sweep removes it too (and no GitOps tool reads it: it is no
    /// `.yaml` file).
    static let pushMarker = temporaryPrefixes[0] + "push-in-progress"

    /// Marks the folder (descriptor `fd`, its root) as holding a push's temporary files; never through a link.
    func markPushing(_ fd: Int32) throws(MemberError) {
        let marker = openat(fd, SafeFolder.pushMarker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard marker >= 0 else { throw error("cannot write \(root)/\(SafeFolder.pushMarker): \(SafeFolder.reason())") }
        close(marker)
    }

    /// Removes the mark of `markPushing` (after the push's files are in place and flushed).
    func clearPushing(_ fd: Int32) { unlinkat(fd, SafeFolder.pushMarker, 0) }

    /// The folders this process has swept (`sweepIfInterrupted`).
    static let swept = SweptFolders()

    static let temporaryPrefixBytes = temporaryPrefixes.map { Array($0.utf8) }

    /// One folder of `sweep` and those below it (at most 8 deep), by the directory entries' own types: every push
    /// of a GitOps folder sweeps it, and a status call per file (what `visit` makes) was most of that on a large
    /// fleet. A link is never followed or removed; an entry of unknown type is looked at with `fstatat`.
    private func sweepFolder(_ fd: Int32, depth: Int) {
        guard depth < 8, let listing = fdopendir(dup(fd)) else { return }
        var folders: [String] = []
        var leftovers: [String] = []
        while let entry = readdir(listing) {
            var type = entry.pointee.d_type
            let (name, temporary) = withUnsafeBytes(of: entry.pointee.d_name) { raw -> (String?, Bool) in
                let bytes = raw.prefix(while: { $0 != 0 })
                let temporary = SafeFolder.temporaryPrefixBytes.contains { bytes.starts(with: $0) }
                let wanted = temporary || type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN)
                return (wanted ? String(decoding: bytes, as: UTF8.self) : nil, temporary)
            }
            guard let name, name != ".", name != ".." else { continue }
            if type == UInt8(DT_UNKNOWN) {
                var info = stat()
                guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                type = info.st_mode & S_IFMT == S_IFDIR ? UInt8(DT_DIR) : info.st_mode & S_IFMT == S_IFREG ? UInt8(DT_REG) : 0
            }
            if type == UInt8(DT_DIR) {
                folders.append(name)
            } else if type == UInt8(DT_REG) && temporary {
                leftovers.append(name)
            }
        }
        closedir(listing)
        for name in leftovers { unlinkat(fd, name, 0) }
        for name in folders {
            let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { continue }
            sweepFolder(child, depth: depth + 1)
            close(child)
        }
    }

    /// What changes when any `.yaml` file below the folder changes, without reading one: each file's path, inode,
    /// size and modification time, in order (never following a link). Empty when the folder does not exist.
    func stamp() throws(MemberError) -> [UInt8] {
        guard let fd = try openRoot(create: false) else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        visit(fd, prefix: "", depth: 0) { _, name, relative, info in
            guard name.hasSuffix(".yaml"), !SafeFolder.temporaryPrefixes.contains(where: { name.hasPrefix($0) }) else { return }
            out += Array(relative.utf8)
            out += Array(" \(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)\n".utf8)
        }
        return out
    }

    /// Calls `each` with the folder descriptor, name, relative path and status of every regular file below `fd`
    /// (sorted by name, at most 8 folders deep); links and everything else are never followed or reported.
    private func visit(_ fd: Int32, prefix: String, depth: Int, _ each: (Int32, String, String, stat) -> Void) {
        guard depth < 8, let listing = fdopendir(dup(fd)) else { return }
        var names: [String] = []
        while let entry = readdir(listing) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(listing)
        for name in names.sorted() {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }
                visit(child, prefix: prefix + name + "/", depth: depth + 1, each)
                close(child)
            case S_IFREG:
                each(fd, name, prefix + name, info)
            default:
                continue  // links and the rest are never read, written through or removed
            }
        }
    }
}

/// The member folders one process has swept, by path.
final class SweptFolders: @unchecked Sendable {
    private let lock = NSLock()
    private var roots: Set<String> = []

    func contains(_ root: String) -> Bool { lock.withLock { roots.contains(root) } }
    func insert(_ root: String) { _ = lock.withLock { roots.insert(root) } }
}

/// Flushes of whole file systems shared by the pushes that need them at the same time. `syncfs` writes out
/// everything of a file system that is not on disk yet, so a flush that starts after a caller's writes finished
/// makes them durable, whoever asked for it: a caller waits for the next flush of its file system to start and
/// finish (one at a time per file system) instead of making one of its own. Sixteen GitOps folders pushed at
/// once then share a flush rather than queue sixteen.
final class FileSystemFlushes: @unchecked Sendable {
    private struct Device {
        var started = 0   // flushes begun
        var finished = 0  // flushes done, in order
        var running = false
        var lastCode: Int32 = 0  // errno of the last flush done, 0 when it worked
    }

    private let condition = NSCondition()
    private var devices: [UInt64: Device] = [:]

    /// Flushes the file system holding `fd`, or waits for a flush of it that starts after this call; the
    /// `errno` of that flush, 0 when it worked.
    func flush(_ fd: Int32) -> Int32 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return errno }
        let device = UInt64(info.st_dev)
        condition.lock()
        defer { condition.unlock() }
        // the flush this call needs is the next one to start: one already running may have begun before its writes
        let needed = devices[device, default: Device()].started + 1
        while devices[device, default: Device()].finished < needed {
            if devices[device, default: Device()].running {
                condition.wait()
                continue
            }
            devices[device, default: Device()].running = true
            devices[device, default: Device()].started += 1
            condition.unlock()
            let code = systemSyncfs(fd) == 0 ? 0 : errno
            condition.lock()
            devices[device, default: Device()].running = false
            devices[device, default: Device()].finished += 1
            devices[device, default: Device()].lastCode = code
            condition.broadcast()
        }
        return devices[device, default: Device()].lastCode
    }
}

/// glibc's `syncfs(2)`, which Swift's Glibc module does not export (it needs _GNU_SOURCE): flushes the one file
/// system holding `fd`.
@_silgen_name("syncfs")
private func systemSyncfs(_ fd: Int32) -> Int32
