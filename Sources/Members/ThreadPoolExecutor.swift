import CThreadShim
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A task executor on threads of its own, optionally at a lower CPU priority (a higher nice value).
///
/// - The daemon runs API requests on one with a nice value, so that readers that never pause cannot starve
///   pushes and scheduled jobs, which run on the default executor at normal priority.
/// - Pushes of GitOps folders run on `blocking`: their file-system calls (`syncfs` above all) block a thread,
///   and on the default executor, which has one thread per core, two blocked pushes stopped every other push.
///
/// Under no contention it is as fast as any other executor.
public final class ThreadPoolExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0
    public let nice: Int32

    /// The threads of work that blocks in the kernel (GitOps folder pushes): as many as pushes run at once by
    /// default.
    public static let blocking = ThreadPoolExecutor(threads: 16, nice: 0, name: "policyhub-files")

    public init(threads: Int, nice: Int32, name: String = "policyhub-api") {
        self.nice = nice
        for index in 0..<max(1, threads) {
            let thread = Thread { [unowned self] in
                if nice > 0 { ThreadPoolExecutor.lowerPriority(nice) }
                self.loop()
            }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Raises the calling thread's nice value (Linux: per thread; raising it needs no privilege).
    public static func lowerPriority(_ nice: Int32) {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(cthread_gettid()), nice)
        #endif
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while head == jobs.count { condition.wait() }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
