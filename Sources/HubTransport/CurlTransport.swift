import CCurl
import CCurlShim
import Foundation

/// `HTTPTransport` over the system libcurl's multi interface: one thread drives every transfer, at most
/// `maxInFlight` at once, retrying connection errors, 429 and 5xx with backoff and `Retry-After`.
public final class CurlTransport: HTTPTransport, @unchecked Sendable {
    public let settings: TransportSettings
    /// Where each retry it schedules is noted (by its request's tag), for progress lines.
    public let board: ActivityBoard?
    private let multi: UnsafeMutableRawPointer
    private let lock = NSLock()
    private var queued: [Transfer] = []
    private var delayed: [(due: Double, transfer: Transfer)] = []
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private var stopping = false
    private var thread: Thread?

    private static let globalInit: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()

    public init(settings: TransportSettings = TransportSettings(), board: ActivityBoard? = nil) {
        _ = CurlTransport.globalInit
        self.settings = settings
        self.board = board
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        multi = handle
        // Transfers in flight are bounded by the loop below, so libcurl gets no bound on open connections.
        // Its connection cache (CURLMOPT_MAXCONNECTS) counts connections in use too: a connection whose transfer
        // ends while more are open than that is closed, not kept. At the in-flight bound, every member's
        // connection was closed between its requests and opened again (500 clusters on hosts of their own, 64 in
        // flight: 8,941 connections and 19.6 s; with twice the bound, 500 connections and 6.1 s). So: room for a
        // connection per transfer in flight, and as many more kept idle for the members between requests.
        ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 2 * settings.maxInFlight)
        // unowned(unsafe): deinit runs shutdown(), which returns only after this thread has left loop(), so the
        // object's memory outlives every access; a checked unowned reference would trap once deinit began
        let thread = Thread { [unowned(unsafe) self] in self.loop() }
        thread.name = "policyhub-curl"
        self.thread = thread
        thread.start()
    }

    private var cleaned = false

    deinit {
        shutdown()
    }

    /// Stops the transfer thread and closes every connection; requests not finished fail.
    public func shutdown() {
        lock.lock()
        if cleaned {
            lock.unlock()
            return
        }
        stopping = true
        lock.unlock()
        curl_multi_wakeup(multi)
        while thread?.isFinished == false { usleep(1000) }
        lock.lock()
        cleaned = true
        lock.unlock()
        curl_multi_cleanup(multi)  // closes the cached connections now, not at some later deinit
    }

    public func send(_ request: HTTPRequest, tls: TLSSettings) async -> Result<HTTPResponse, TransportError> {
        await start(request, tls: tls, receiver: nil)
    }

    public func stream(_ request: HTTPRequest, tls: TLSSettings, receive: @escaping @Sendable ([UInt8]) -> Void) async
        -> Result<HTTPResponse, TransportError>
    {
        let cancelled = CancelFlag()
        defer { lock.withLock { _ = streams.removeValue(forKey: ObjectIdentifier(cancelled)) } }
        return await withTaskCancellationHandler {
            await start(request, tls: tls, receiver: Transfer.Receiver(receive: receive, cancelled: cancelled))
        } onCancel: {
            cancelled.set()
            lock.lock()
            let transfer = streams[ObjectIdentifier(cancelled)]
            if let transfer { cancelling.append(transfer) }
            lock.unlock()
            curl_multi_wakeup(multi)
        }
    }

    /// Streams running now, by their cancel flag, and those whose task was cancelled (the transfer thread ends
    /// them); guarded by `lock`.
    private var streams: [ObjectIdentifier: Transfer] = [:]
    private var cancelling: [Transfer] = []

    private func takeCancelled() -> [Transfer] {
        lock.lock()
        defer { lock.unlock() }
        let out = cancelling
        cancelling = []
        return out
    }

    private func start(_ request: HTTPRequest, tls: TLSSettings, receiver: Transfer.Receiver?) async -> Result<HTTPResponse, TransportError> {
        if let problem = RequestURL.pathProblem(request.url) {
            return .failure(.refused(url: RequestURL.redacted(request.url), message: problem))
        }
        if let deadline = request.deadline, deadline <= Date().timeIntervalSince1970 {
            return .failure(.timeout(url: RequestURL.redacted(request.url), message: "the deadline for this member passed before the request was sent"))
        }
        if let tag = request.tag, let reason = board?.refusal(tag) {
            return .failure(.refused(url: RequestURL.redacted(request.url), message: reason))
        }
        guard let easy = curl_easy_init() else {
            return .failure(.other(url: RequestURL.redacted(request.url), message: "libcurl could not make a transfer (out of memory)"))
        }
        return await withCheckedContinuation { continuation in
            let transfer = Transfer(handle: easy, request: request, tls: tls, settings: settings, receiver: receiver,
                                    continuation: continuation)
            lock.lock()
            if stopping {
                lock.unlock()
                continuation.resume(returning: .failure(.other(url: RequestURL.redacted(request.url), message: "the transport is shut down")))
                return
            }
            queued.append(transfer)
            if let receiver {
                streams[ObjectIdentifier(receiver.cancelled)] = transfer
                // cancelled before it was queued: ended at the transfer thread's next turn
                if receiver.cancelled.isSet { cancelling.append(transfer) }
            }
            lock.unlock()
            curl_multi_wakeup(multi)
        }
    }

    // MARK: - The transfer thread

    private func loop() {
        var running: Int32 = 0
        while true {
            let now = Date().timeIntervalSince1970
            lock.lock()
            if stopping {
                let left = queued + delayed.map(\.transfer) + Array(active.values)
                queued = []
                delayed = []
                lock.unlock()
                for transfer in active.values { curl_multi_remove_handle(multi, transfer.handle) }
                active = [:]
                for transfer in left { transfer.finish(.failure(.other(url: transfer.printableURL, message: "the transport is shut down"))) }
                return
            }
            let due = delayed.filter { $0.due <= now }.map(\.transfer)
            delayed.removeAll { $0.due <= now }
            var starting = due + queued
            queued = []
            let room = max(0, settings.maxInFlight - active.count)
            if starting.count > room {
                queued = Array(starting[room...])
                starting = Array(starting[..<room])
            }
            lock.unlock()
            for transfer in starting {
                if transfer.receiver?.cancelled.isSet == true {
                    transfer.finish(.failure(.other(url: transfer.printableURL, message: "cancelled")))
                    continue
                }
                if let refused = transfer.prepare() {
                    transfer.finish(.failure(.other(url: transfer.printableURL, message: refused)))
                    continue
                }
                active[transfer.handle] = transfer
                curl_multi_add_handle(multi, transfer.handle)
            }
            for transfer in takeCancelled() where active.removeValue(forKey: transfer.handle) != nil {
                curl_multi_remove_handle(multi, transfer.handle)
                transfer.finish(.failure(.other(url: transfer.printableURL, message: "cancelled")))
            }
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                      let transfer = active.removeValue(forKey: handle) else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, handle)
                complete(transfer, code: code)
            }
            var timeout: Int32 = 1000
            lock.lock()
            let nextDue = delayed.map(\.due).min()
            let more = !queued.isEmpty && active.count < settings.maxInFlight
            lock.unlock()
            if let nextDue { timeout = Int32(max(0, min(1000, (nextDue - Date().timeIntervalSince1970) * 1000))) }
            if more { timeout = 0 }
            curl_multi_poll(multi, nil, 0, timeout, nil)
        }
    }

    private func complete(_ transfer: Transfer, code: CURLcode) {
        let result = transfer.result(code)
        var retryAfter: Double?
        var reason = ""
        switch result {
        case .success(let response) where response.status == 429 || response.status >= 500:
            retryAfter = response.header("Retry-After").flatMap(Double.init) ?? -1
            reason = "HTTP \(response.status)"
        case .failure(let error) where error.isTransient:
            retryAfter = -1
            reason = error.reason
        case .success, .failure:
            break
        }
        if let retryAfter, transfer.receiver == nil, transfer.attempts < settings.maxAttempts {
            let backoff = min(settings.maxDelay, settings.baseDelay * pow(2, Double(transfer.attempts - 1)))
            let delay = retryAfter >= 0 ? min(retryAfter, settings.maxDelay) : backoff
            if let deadline = transfer.request.deadline, Date().timeIntervalSince1970 + delay >= deadline {
                transfer.finish(result)  // no attempt could finish before the member's deadline
                return
            }
            let due = Date().timeIntervalSince1970 + delay
            if let tag = transfer.request.tag {
                board?.retrying(tag, attempt: transfer.attempts + 1, of: settings.maxAttempts, after: reason, next: due)
            }
            lock.lock()
            delayed.append((due, transfer))
            lock.unlock()
            return
        }
        transfer.finish(result)
    }
}

/// One request and its libcurl easy handle, kept alive while libcurl writes into it.
final class Transfer {
    let request: HTTPRequest
    let tls: TLSSettings
    let settings: TransportSettings
    let handle: UnsafeMutableRawPointer
    /// Where a streamed answer's body goes (`stream`), nil for an answer kept whole.
    let receiver: Receiver?
    private var continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectList: UnsafeMutablePointer<curl_slist>?
    /// libcurl writes its detailed error message here; the buffer lives as long as the handle.
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var body: [UInt8] = []
    var headers: [HTTPHeader] = []
    var attempts = 0
    /// Response header bytes of this attempt.
    var headerBytes = 0
    /// The bound this attempt's answer broke, which ended it.
    var exceeded: String?

    /// A streamed answer's consumer and the flag its task's cancellation sets.
    struct Receiver {
        let receive: @Sendable ([UInt8]) -> Void
        let cancelled: CancelFlag
    }

    /// The HTTP status of this attempt's answer, once its head arrived (0 before).
    var status: Int {
        var status = 0
        ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    /// The URL as it may be printed: without a password.
    var printableURL: String { RequestURL.redacted(request.url) }

    /// Takes ownership of `handle` (a fresh easy handle) and cleans it up when done.
    init(handle: UnsafeMutableRawPointer, request: HTTPRequest, tls: TLSSettings, settings: TransportSettings, receiver: Receiver?,
         continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) {
        self.receiver = receiver
        self.request = request
        self.tls = tls
        self.settings = settings
        self.continuation = continuation
        self.handle = handle
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
        curl_slist_free_all(headerList)
        curl_slist_free_all(connectList)
    }

    /// Sets every option for the next attempt; returns libcurl's refusal of one, which fails the request
    /// (a rejected CA or certificate must never fall back to libcurl's defaults).
    func prepare() -> String? {
        var refused: String?
        func check(_ code: CURLcode, _ option: String) {
            if code != CURLE_OK && refused == nil { refused = "libcurl refused \(option): \(String(cString: curl_easy_strerror(code)))" }
        }
        attempts += 1
        body = []
        headers = []
        headerBytes = 0
        exceeded = nil
        curl_easy_reset(handle)
        let me = Unmanaged.passUnretained(self).toOpaque()
        check(ccurl_setopt_string(handle, CURLOPT_URL, request.url), "CURLOPT_URL")
        // the path goes out exactly as built: never squashed by libcurl (send() refused dot segments already)
        check(ccurl_setopt_long(handle, CURLOPT_PATH_AS_IS, 1), "CURLOPT_PATH_AS_IS")
        check(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        check(ccurl_setopt_string(handle, CURLOPT_USERAGENT, settings.userAgent), "CURLOPT_USERAGENT")
        // HTTP/2 where the server offers it (libcurl's default over TLS), and a request to a host whose connection
        // is still being set up waits to share it rather than opening one more: one connection per member
        // carries all of its requests at once
        check(ccurl_setopt_long(handle, CURLOPT_PIPEWAIT, 1), "CURLOPT_PIPEWAIT")
        if tls.compression { check(ccurl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, ""), "CURLOPT_ACCEPT_ENCODING") }
        if let proxy = tls.proxy {
            // a kubeconfig's proxy-url replaces the environment's proxy settings, no_proxy included (client-go)
            check(ccurl_setopt_string(handle, CURLOPT_PROXY, proxy), "CURLOPT_PROXY")
            check(ccurl_setopt_string(handle, CURLOPT_NOPROXY, ""), "CURLOPT_NOPROXY")
        }
        // a stream lasts until its deadline (none: until it ends); keepalive probes find a peer that vanished
        var total = receiver == nil ? settings.totalTimeout : Double.infinity
        if let deadline = request.deadline { total = max(0.001, min(total, deadline - Date().timeIntervalSince1970)) }
        check(ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(min(settings.connectTimeout, total) * 1000)), "CURLOPT_CONNECTTIMEOUT_MS")
        if total.isFinite { check(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, Int(total * 1000))), "CURLOPT_TIMEOUT_MS") }
        if receiver != nil {
            // a watch sits idle for minutes: small buffers, OpenSSL's released while idle (thousands stay open)
            check(ccurl_setopt_long(handle, CURLOPT_BUFFERSIZE, 4096), "CURLOPT_BUFFERSIZE")
            check(ccurl_setopt_release_tls_buffers(handle), "CURLOPT_SSL_CTX_FUNCTION")
            check(ccurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1), "CURLOPT_TCP_KEEPALIVE")
            check(ccurl_setopt_long(handle, CURLOPT_TCP_KEEPIDLE, 30), "CURLOPT_TCP_KEEPIDLE")
            check(ccurl_setopt_long(handle, CURLOPT_TCP_KEEPINTVL, 10), "CURLOPT_TCP_KEEPINTVL")
        }
        // the body as received (before gzip is undone) is bounded here; as decoded, in the write function
        // (a stream has no size bound and is cancelled through the transfer thread: no progress calls, which
        // libcurl would make for each of thousands of idle watches every second)
        check(ccurl_setopt_long(handle, CURLOPT_NOPROGRESS, receiver == nil ? 0 : 1), "CURLOPT_NOPROGRESS")
        check(ccurl_setopt_pointer(handle, CURLOPT_XFERINFODATA, me), "CURLOPT_XFERINFODATA")
        check(ccurl_setopt_xferinfo_function(handle) { user, _, received, _, _ in
            guard let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            if received > Int64(transfer.settings.maxResponseBytes) {
                transfer.exceeded = "the response body is larger than \(Transfer.size(transfer.settings.maxResponseBytes)), the limit for one answer"
                return 1
            }
            return 0
        }, "CURLOPT_XFERINFOFUNCTION")
        errorBuffer[0] = 0
        check(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer), "CURLOPT_ERRORBUFFER")
        switch request.method {
        case "GET": check(ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1), "CURLOPT_HTTPGET")
        case "HEAD": check(ccurl_setopt_long(handle, CURLOPT_NOBODY, 1), "CURLOPT_NOBODY")
        default: check(ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method), "CURLOPT_CUSTOMREQUEST")
        }
        if let payload = request.body {
            check(ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, payload.count), "CURLOPT_POSTFIELDSIZE")
            if payload.isEmpty {
                check(ccurl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, ""), "CURLOPT_COPYPOSTFIELDS")
            } else {
                payload.withUnsafeBufferPointer { buffer in  // libcurl copies the bytes
                    check(ccurl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress)), "CURLOPT_COPYPOSTFIELDS")
                }
            }
        }
        curl_slist_free_all(headerList)
        headerList = nil
        for header in request.headers { headerList = curl_slist_append(headerList, "\(header.name): \(header.value)") }
        if request.body != nil && !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        }
        check(ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList), "CURLOPT_HTTPHEADER")
        // TLS: verification on unless switched off on purpose.
        check(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, tls.verifyPeer ? 1 : 0), "CURLOPT_SSL_VERIFYPEER")
        check(ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, tls.verifyPeer ? 2 : 0), "CURLOPT_SSL_VERIFYHOST")
        if let ca = tls.caPEM { check(ca.withUnsafeBytes { ccurl_setopt_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }, "CURLOPT_CAINFO_BLOB") }
        if let file = tls.caFile { check(ccurl_setopt_string(handle, CURLOPT_CAINFO, file), "CURLOPT_CAINFO") }
        if tls.caPEM != nil || tls.caFile != nil {
            // the member's CA is the only trust anchor, as kubectl has it: not also the system's CA folder,
            // which libcurl would otherwise search (a file lookup per issuer) on every new connection
            check(ccurl_setopt_pointer(handle, CURLOPT_CAPATH, nil), "CURLOPT_CAPATH")
        }
        if let cert = tls.clientCertificatePEM {
            check(ccurl_setopt_string(handle, CURLOPT_SSLCERTTYPE, "PEM"), "CURLOPT_SSLCERTTYPE")
            check(cert.withUnsafeBytes { ccurl_setopt_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) }, "CURLOPT_SSLCERT_BLOB")
        }
        if let key = tls.clientKeyPEM {
            check(ccurl_setopt_string(handle, CURLOPT_SSLKEYTYPE, "PEM"), "CURLOPT_SSLKEYTYPE")
            check(key.withUnsafeBytes { ccurl_setopt_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) }, "CURLOPT_SSLKEY_BLOB")
        }
        if let file = tls.clientCertificateFile { check(ccurl_setopt_string(handle, CURLOPT_SSLCERT, file), "CURLOPT_SSLCERT") }
        if let file = tls.clientKeyFile { check(ccurl_setopt_string(handle, CURLOPT_SSLKEY, file), "CURLOPT_SSLKEY") }
        curl_slist_free_all(connectList)
        connectList = nil
        for entry in tls.connectTo { connectList = curl_slist_append(connectList, entry) }
        if connectList != nil { check(ccurl_setopt_slist(handle, CURLOPT_CONNECT_TO, connectList), "CURLOPT_CONNECT_TO") }
        check(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, me), "CURLOPT_WRITEDATA")
        check(ccurl_setopt_write_function(handle) { data, size, count, user in
            guard let data, let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            if let receiver = transfer.receiver, (200..<300).contains(transfer.status) {
                receiver.receive(data.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) })
                return length
            }
            if transfer.body.count + length > transfer.settings.maxResponseBytes {
                transfer.exceeded = "the response body is larger than \(Transfer.size(transfer.settings.maxResponseBytes)) once decoded, the limit for one answer"
                return 0  // libcurl ends the transfer
            }
            data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
            }
            return length
        }, "CURLOPT_WRITEFUNCTION")
        check(ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, me), "CURLOPT_HEADERDATA")
        check(ccurl_setopt_header_function(handle) { data, size, count, user in
            guard let data, let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            transfer.headerBytes += length
            if transfer.headerBytes > transfer.settings.maxHeaderBytes {
                transfer.exceeded = "the response headers are larger than \(Transfer.size(transfer.settings.maxHeaderBytes)), the limit for one answer"
                return 0
            }
            let accepted = data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                transfer.received(headerLine: UnsafeBufferPointer(start: bytes, count: length))
            }
            return accepted ? length : 0
        }, "CURLOPT_HEADERFUNCTION")
        return refused
    }

    /// One header line as libcurl hands it over, CR LF included: read as bytes (thousands per push, so
    /// no Foundation string trimming).
    /// False when the answer announces a body over the bound (the transfer ends before it is read).
    func received(headerLine raw: UnsafeBufferPointer<UInt8>) -> Bool {
        let line = Transfer.trimmed(raw[...])
        if line.starts(with: "HTTP/".utf8) {  // a new response (after 100 or a redirect)
            headers = []
            return true
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return true }  // the blank line after them
        let name = String(decoding: UnsafeBufferPointer(rebasing: Transfer.trimmed(line[..<colon])), as: UTF8.self)
        let value = String(decoding: UnsafeBufferPointer(rebasing: Transfer.trimmed(line[(colon + 1)...])), as: UTF8.self)
        headers.append(HTTPHeader(name, value))
        // the body arrives in pieces: room for all of it at once instead of growing (bounded: a hint only)
        if receiver == nil, name.utf8.count == 14, name.lowercased() == "content-length", let length = Int(value), length > 0 {
            if length > settings.maxResponseBytes {
                exceeded = "the response announces a body of \(Transfer.size(length)) (Content-Length), more than \(Transfer.size(settings.maxResponseBytes)), the limit for one answer"
                return false
            }
            body.reserveCapacity(length)
        }
        return true
    }

    /// A byte count for people: `64 MiB`, `2048 MiB`, `512 KiB`, `100 bytes`.
    static func size(_ bytes: Int) -> String {
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 || bytes >= 16 << 20 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }

    static func trimmed(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Slice<UnsafeBufferPointer<UInt8>> {
        func space(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0d || byte == 0x0a }
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, space(bytes[start]) { start += 1 }
        while end > start, space(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    /// The outcome of the attempt that just finished.
    func result(_ code: CURLcode) -> Result<HTTPResponse, TransportError> {
        if exceeded == nil && code == CURLE_OK {
            var status = 0
            ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            return .success(HTTPResponse(status: status, headers: headers, body: body, attempts: attempts))
        }
        let url = printableURL
        if let exceeded {
            return .failure(.refused(url: url, message: exceeded))
        }
        if code != CURLE_OK {
            let detail = String(cString: UnsafePointer(errorBuffer))
            let message = RequestURL.redactedText(detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
            if message.contains("header") && (code == CURLE_OUT_OF_MEMORY || message.contains("giant") || message.contains("too large")) {
                return .failure(.refused(url: url, message: "the response headers are too large (\(message))"))
            }
            if code == CURLE_OPERATION_TIMEDOUT, let deadline = request.deadline, Date().timeIntervalSince1970 >= deadline - 0.05 {
                return .failure(.timeout(url: url, message: "the deadline for this member passed (\(message))"))
            }
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                 CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
                // an HTTP/2 stream reset or a broken HTTP/2 connection is HTTP/1.1's dropped connection
                return .failure(.connection(url: url, message: message))
            case CURLE_OPERATION_TIMEDOUT:
                return .failure(.timeout(url: url, message: message))
            case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
                 CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR:
                return .failure(.tls(url: url, message: message))
            default:
                return .failure(.other(url: url, message: message))
            }
        }
        var status = 0
        ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, headers: headers, body: body, attempts: attempts))
    }

    func finish(_ result: Result<HTTPResponse, TransportError>) {
        continuation?.resume(returning: result)
        continuation = nil
    }
}

/// A flag set once, from any thread (a stream's cancellation, read by the transfer thread).
final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}
