import Foundation

/// A program the hub runs (an exec credential plugin, git, gpg): its output and errors read in full while it
/// runs, killed when it overstays its time.
public enum ChildProcess {
    /// How a run ended.
    public struct Outcome: Sendable {
        public var status: Int32
        public var output: Data
        public var errors: Data
        /// True when it was killed for taking longer than its timeout.
        public var timedOut: Bool

        /// The last line of its errors (at most 300 characters), for a message.
        public var lastErrorLine: String {
            String(String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init)?.prefix(300) ?? "")
        }
    }

    /// Runs `path` with `arguments` and exactly `environment`; stdin from `input` (nil: /dev/null).
    /// Throws when the program cannot be started.
    public static func run(_ path: String, _ arguments: [String], environment: [String: String],
                           input: FileHandle? = nil, timeout: Double) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input ?? FileHandle.nullDevice
        let reads = DispatchGroup()
        let collected = Collected()
        for (pipe, isOutput) in [(output, true), (errors, false)] {
            reads.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(data, isOutput: isOutput)
                reads.leave()
            }
        }
        let ended = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in ended.signal() }
        do {
            try process.run()
        } catch {
            output.fileHandleForWriting.closeFile()
            errors.fileHandleForWriting.closeFile()
            throw error
        }
        var timedOut = false
        if ended.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            process.terminate()
            if ended.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                _ = ended.wait(timeout: .now() + 2)
            }
            _ = reads.wait(timeout: .now() + 2)
        } else {
            _ = reads.wait(timeout: .now() + 5)
        }
        let (stdout, stderr) = collected.values
        return Outcome(status: timedOut ? -1 : process.terminationStatus, output: stdout, errors: stderr, timedOut: timedOut)
    }

    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var output = Data()
        private var errors = Data()

        func set(_ data: Data, isOutput: Bool) {
            lock.withLock { if isOutput { output = data } else { errors = data } }
        }

        var values: (Data, Data) { lock.withLock { (output, errors) } }
    }
}
