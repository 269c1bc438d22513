import CCurl
import CCurlShim
import Foundation

/// `HTTPTransport` over the system libcurl's multi interface: one thread drives every transfer, at most
/// `maxInFlight` at once, retrying connection errors, 429 and 5xx with backoff and `Retry-After`.
public final class CurlTransport: HTTPTransport, @unchecked Sendable {
    public let settings: TransportSettings
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

    public init(settings: TransportSettings = TransportSettings()) {
        _ = CurlTransport.globalInit
        self.settings = settings
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        multi = handle
        ccurl_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, settings.maxInFlight)
        // keep that many idle connections (and their TLS sessions) for the next requests
        ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, settings.maxInFlight)
        let thread = Thread { [unowned self] in self.loop() }
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
        guard let easy = curl_easy_init() else {
            return .failure(.other(url: request.url, message: "libcurl could not make a transfer (out of memory)"))
        }
        return await withCheckedContinuation { continuation in
            let transfer = Transfer(handle: easy, request: request, tls: tls, settings: settings, continuation: continuation)
            lock.lock()
            if stopping {
                lock.unlock()
                continuation.resume(returning: .failure(.other(url: request.url, message: "the transport is shut down")))
                return
            }
            queued.append(transfer)
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
                for transfer in left { transfer.finish(.failure(.other(url: transfer.request.url, message: "the transport is shut down"))) }
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
                transfer.prepare()
                active[transfer.handle] = transfer
                curl_multi_add_handle(multi, transfer.handle)
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
        switch result {
        case .success(let response) where response.status == 429 || response.status >= 500:
            retryAfter = response.header("Retry-After").flatMap(Double.init) ?? -1
        case .failure(let error) where error.isTransient:
            retryAfter = -1
        case .success, .failure:
            break
        }
        if let retryAfter, transfer.attempts < settings.maxAttempts {
            let backoff = min(settings.maxDelay, settings.baseDelay * pow(2, Double(transfer.attempts - 1)))
            let delay = retryAfter >= 0 ? min(retryAfter, settings.maxDelay) : backoff
            lock.lock()
            delayed.append((Date().timeIntervalSince1970 + delay, transfer))
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
    private var continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectList: UnsafeMutablePointer<curl_slist>?
    /// libcurl writes its detailed error message here; the buffer lives as long as the handle.
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var body: [UInt8] = []
    var headers: [HTTPHeader] = []
    var attempts = 0

    /// Takes ownership of `handle` (a fresh easy handle) and cleans it up when done.
    init(handle: UnsafeMutableRawPointer, request: HTTPRequest, tls: TLSSettings, settings: TransportSettings,
         continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) {
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

    /// Sets every option for the next attempt.
    func prepare() {
        attempts += 1
        body = []
        headers = []
        curl_easy_reset(handle)
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_setopt_string(handle, CURLOPT_URL, request.url)
        ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_string(handle, CURLOPT_USERAGENT, settings.userAgent)
        ccurl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "")
        ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout * 1000))
        ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(settings.totalTimeout * 1000))
        errorBuffer[0] = 0
        ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        switch request.method {
        case "GET": ccurl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case "HEAD": ccurl_setopt_long(handle, CURLOPT_NOBODY, 1)
        default: ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let payload = request.body {
            ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, payload.count)
            if payload.isEmpty {
                ccurl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
            } else {
                payload.withUnsafeBufferPointer { buffer in  // libcurl copies the bytes
                    _ = ccurl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress))
                }
            }
        }
        curl_slist_free_all(headerList)
        headerList = nil
        for header in request.headers { headerList = curl_slist_append(headerList, "\(header.name): \(header.value)") }
        if request.body != nil && !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        }
        ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
        // TLS: verification on unless switched off on purpose.
        ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, tls.verifyPeer ? 1 : 0)
        ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, tls.verifyPeer ? 2 : 0)
        if let ca = tls.caPEM { ca.withUnsafeBytes { _ = ccurl_setopt_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) } }
        if let file = tls.caFile { ccurl_setopt_string(handle, CURLOPT_CAINFO, file) }
        if tls.caPEM != nil || tls.caFile != nil {
            // the member's CA is the only trust anchor, as kubectl has it: not also the system's CA folder,
            // which libcurl would otherwise search (a file lookup per issuer) on every new connection
            ccurl_setopt_pointer(handle, CURLOPT_CAPATH, nil)
        }
        if let cert = tls.clientCertificatePEM {
            ccurl_setopt_string(handle, CURLOPT_SSLCERTTYPE, "PEM")
            cert.withUnsafeBytes { _ = ccurl_setopt_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) }
        }
        if let key = tls.clientKeyPEM {
            ccurl_setopt_string(handle, CURLOPT_SSLKEYTYPE, "PEM")
            key.withUnsafeBytes { _ = ccurl_setopt_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) }
        }
        if let file = tls.clientCertificateFile { ccurl_setopt_string(handle, CURLOPT_SSLCERT, file) }
        if let file = tls.clientKeyFile { ccurl_setopt_string(handle, CURLOPT_SSLKEY, file) }
        curl_slist_free_all(connectList)
        connectList = nil
        for entry in tls.connectTo { connectList = curl_slist_append(connectList, entry) }
        if connectList != nil { ccurl_setopt_slist(handle, CURLOPT_CONNECT_TO, connectList) }
        ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, me)
        ccurl_setopt_write_function(handle) { data, size, count, user in
            guard let data, let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                transfer.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
            }
            return length
        }
        ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, me)
        ccurl_setopt_header_function(handle) { data, size, count, user in
            guard let data, let user else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            let length = size * count
            data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                transfer.received(headerLine: UnsafeBufferPointer(start: bytes, count: length))
            }
            return length
        }
    }

    /// One header line as libcurl hands it over, CR LF included: read as bytes (thousands per push, so
    /// no Foundation string trimming).
    func received(headerLine raw: UnsafeBufferPointer<UInt8>) {
        let line = Transfer.trimmed(raw[...])
        if line.starts(with: "HTTP/".utf8) {  // a new response (after 100 or a redirect)
            headers = []
            return
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return }  // the blank line after them
        let name = String(decoding: UnsafeBufferPointer(rebasing: Transfer.trimmed(line[..<colon])), as: UTF8.self)
        let value = String(decoding: UnsafeBufferPointer(rebasing: Transfer.trimmed(line[(colon + 1)...])), as: UTF8.self)
        headers.append(HTTPHeader(name, value))
        // the body arrives in pieces: room for all of it at once instead of growing (bounded: a hint only)
        if name.utf8.count == 14, name.lowercased() == "content-length", let length = Int(value), length > 0 {
            body.reserveCapacity(min(length, 64 << 20))
        }
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
        if code != CURLE_OK {
            let detail = String(cString: UnsafePointer(errorBuffer))
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            switch code {
            case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                 CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
                return .failure(.connection(url: request.url, message: message))
            case CURLE_OPERATION_TIMEDOUT:
                return .failure(.timeout(url: request.url, message: message))
            case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
                 CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR:
                return .failure(.tls(url: request.url, message: message))
            default:
                return .failure(.other(url: request.url, message: message))
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
