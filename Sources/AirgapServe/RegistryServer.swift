import AirgapContent
import AirgapOCI
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One line per request (method, path, status, bytes, milliseconds) and the alarms, to stderr or a file.
public final class AccessLog: @unchecked Sendable { // the lock guards the handle
    private let handle: FileHandle
    private let lock = NSLock()
    private let alsoAlarmTo: FileHandle?

    public init(path: String?) throws {
        if let path {
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw ContentError(.missing, "cannot open the log file \(path) for writing; check the directory exists and is writable")
            }
            handle.seekToEndOfFile()
            self.handle = handle
            alsoAlarmTo = FileHandle.standardError
        } else {
            handle = FileHandle.standardError
            alsoAlarmTo = nil
        }
    }

    private let timeFormat: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
    private func now() -> String { lock.withLock { timeFormat.string(from: Date()) } }

    func request(client: String, method: String, path: String, status: Int, bytes: Int64, seconds: Double, note: String = "") {
        write("\(now()) \(client) \(method) \(Self.printable(path)) \(status) \(bytes) \(String(format: "%.1f", seconds * 1000))ms\(note)\n")
    }

    /// A check that failed while serving: loud, and on stderr even when requests go to a file.
    public func alarm(_ message: String) {
        let line = "\(now()) ALARM: \(Self.printable(message))\n"
        write(line)
        if let alsoAlarmTo { lock.withLock { alsoAlarmTo.write(Data(line.utf8)) } }
    }

    private func write(_ line: String) { lock.withLock { handle.write(Data(line.utf8)) } }

    /// A client's path may carry control characters: never let them reach a terminal.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    }
}

/// The HTTP side of `serve`: SwiftNIO HTTP/1.1 (optionally TLS), each connection a task, each
/// blob streamed from its file segments in 256 KiB chunks read and hashed on NIO's thread pool;
/// a blob whose bytes no longer match its digest ends its response early (the connection is
/// closed before the last bytes), so no client receives a changed blob whole.
public final class RegistryServer: Sendable {
    let api: RegistryAPI
    let log: AccessLog
    let tls: NIOSSLContext?
    static let chunkSize = 256 << 10
    /// A connection that makes no progress this long (no request completed, no chunk taken by the
    /// client) is closed: a client holding a half-sent request or not reading cannot hold it forever.
    let idleTimeout: TimeAmount
    /// Connections served at once; more are closed as they come (one host cannot starve the rest).
    let maxConnections: Int
    private let active = NIOLockedValueBox(0)

    public init(api: RegistryAPI, log: AccessLog, tlsCertificate: String? = nil, tlsKey: String? = nil,
                idleSeconds: Int = 60, maxConnections: Int = 1024) throws {
        self.api = api
        self.log = log
        self.idleTimeout = .seconds(Int64(idleSeconds))
        self.maxConnections = maxConnections
        if let tlsCertificate, let tlsKey {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(tlsCertificate).map { NIOSSLCertificateSource.certificate($0) }
                let key = try NIOSSLPrivateKey(file: tlsKey, format: .pem)
                tls = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
            } catch {
                throw ContentError(.unsupported, "cannot use the TLS certificate \(tlsCertificate) with the key \(tlsKey): \(error); give a PEM certificate (chain) and its PEM private key")
            }
        } else {
            tls = nil
        }
    }

    public var scheme: String { tls == nil ? "http" : "https" }

    /// Binds, reports the bound address, and serves until the calling task is cancelled.
    public func run(host: String, port: Int, listening: @Sendable (_ boundPort: Int) -> Void) async throws {
        let tls = self.tls
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        } catch {
            throw ContentError(.unsupported, "cannot listen on \(host):\(port): \(error); choose another --listen address or port")
        }
        listening(server.channel.localAddress?.port ?? port)
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    let admitted = active.withLockedValue { count in
                        guard count < maxConnections else { return false }
                        count += 1
                        return true
                    }
                    guard admitted else {
                        log.alarm("refused a connection from \(connection.channel.remoteAddress?.ipAddress ?? "?"): \(maxConnections) connections are open already")
                        // Closed through the async channel, which must finish its writer itself.
                        group.addTask { try? await connection.executeThenClose { _, _ in } }
                        continue
                    }
                    group.addTask {
                        defer { self.active.withLockedValue { $0 -= 1 } }
                        await self.serve(connection)
                    }
                }
            }
        }
    }

    func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let channel = connection.channel
        let progress = NIOLockedValueBox(NIODeadline.now())
        let idle = idleTimeout
        let watchdog = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { task in
            if NIODeadline.now() - progress.withLockedValue({ $0 }) > idle {
                channel.close(promise: nil)
                task.cancel()
            }
        }
        defer { watchdog.cancel() }
        let touch: @Sendable () -> Void = { progress.withLockedValue { $0 = .now() } }
        try? await connection.executeThenClose { inbound, outbound in
            try? await self.answer(inbound, outbound, on: connection.channel, touch: touch)
            // executeThenClose closes at once, dropping what the socket has not taken yet: the
            // tail of a body sent with `Connection: close` (skopeo asks for that on every blob).
            await Self.drain(connection.channel)
        }
    }

    func answer(_ inbound: NIOAsyncChannelInboundStream<HTTPServerRequestPart>, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                on channel: any Channel, touch: @escaping @Sendable () -> Void) async throws {
        let client = channel.remoteAddress?.ipAddress ?? "?"
        var pending: HTTPRequestHead?
        for try await part in inbound {
            touch()
            switch part {
            case .head(let head):
                // A write is refused at once: its body is never read.
                if head.method != .GET && head.method != .HEAD {
                    _ = try await respond(head, client: client, outbound, allocator: channel.allocator, closing: true, touch: touch)
                    return
                }
                pending = head
            case .body:
                continue
            case .end:
                guard let head = pending else { continue }
                pending = nil
                guard try await respond(head, client: client, outbound, allocator: channel.allocator, closing: !head.isKeepAlive, touch: touch) else { return }
                touch()
            }
        }
    }

    /// Half-closes once every pending write has reached the socket; a client that stops reading
    /// gets 30 s before the connection is dropped anyway.
    static func drain(_ channel: any Channel) async {
        let drained = channel.eventLoop.makePromise(of: Void.self)
        channel.close(mode: .output, promise: drained)
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(30)) { channel.close(promise: nil) }
        try? await drained.futureResult.get()
        deadline.cancel()
    }

    /// Answers one request; false when the connection must close (asked for, or a response cut short).
    func respond(_ head: HTTPRequestHead, client: String, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                 allocator: ByteBufferAllocator, closing: Bool, touch: @Sendable () -> Void = {}) async throws -> Bool {
        let started = ContinuousClock.now
        let request = APIRequest(method: head.method.rawValue, target: head.uri, range: head.headers.first(name: "range"))
        var response = await api.respond(to: request)
        func finish(_ status: Int, _ bytes: Int64, note: String = "") {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            log.request(client: client, method: head.method.rawValue, path: request.path, status: status, bytes: bytes, seconds: seconds, note: note)
        }
        func headers(_ list: [(String, String)]) -> HTTPHeaders {
            var headers = HTTPHeaders(list)
            if closing { headers.replaceOrAdd(name: "Connection", value: "close") }
            return headers
        }
        // A blob is opened before its head is sent: a file gone missing is still a clean error.
        var chunks: FileSegments.Chunks?
        if case .blob(_, _, let segments, let digest, let range) = response, head.method == .GET {
            do { chunks = try FileSegments.Chunks(segments, expected: digest, range: range) } catch {
                log.alarm("cannot serve \(digest): \(error)")
                response = RegistryAPI.error(500, "UNKNOWN", "the blob cannot be read on the server; nothing was sent")
            }
        }
        switch response {
        case .bytes(let status, let list, let body):
            do {
                try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: status), headers: headers(list))))
                if !body.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                try await outbound.write(.end(nil))
            } catch {
                // A client that hung up once it had its bytes (a manifest's length is known) is
                // still a request served: the log says so rather than leaving it out.
                finish(status, Int64(body.count), note: " CLIENT CLOSED")
                throw error
            }
            finish(status, Int64(body.count))
            return !closing
        case .blob(let status, let list, _, let digest, _):
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: status), headers: headers(list))))
            guard let chunks else {
                try await outbound.write(.end(nil))
                finish(status, 0)
                return !closing
            }
            var sent: Int64 = 0
            do {
                // One chunk is read and hashed ahead while the last one is written: the disk, the
                // hash and the socket overlap (one read in flight at a time; `Chunks` is sequential).
                var ahead = Task { try await Self.nextChunk(chunks, allocator) }
                defer { ahead.cancel() }
                while let buffer = try await ahead.value {
                    ahead = Task { try await Self.nextChunk(chunks, allocator) }
                    sent += Int64(buffer.readableBytes)
                    try await outbound.write(.body(.byteBuffer(buffer)))
                    touch()
                }
            } catch let error as ContentError {
                log.alarm("stopped serving \(digest) to \(client) after \(sent) of \(chunks.range.count) bytes: \(error.message); the response was cut short, nothing wrong was delivered whole")
                finish(status, sent, note: " ABORTED")
                return false
            } catch {
                finish(status, sent, note: " CLIENT CLOSED")
                throw error
            }
            do { try await outbound.write(.end(nil)) } catch {
                finish(status, sent, note: " CLIENT CLOSED")
                throw error
            }
            finish(status, sent)
            return !closing
        }
    }

    /// Reads and hashes one chunk off the event loops and off Swift's cooperative threads.
    static func nextChunk(_ chunks: FileSegments.Chunks, _ allocator: ByteBufferAllocator) async throws -> ByteBuffer? {
        try await NIOThreadPool.singleton.runIfActive {
            var buffer = allocator.buffer(capacity: chunkSize)
            var more = true
            _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: chunkSize) { raw in
                guard let n = try chunks.next(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<chunkSize])) else { more = false; return 0 }
                return n
            }
            return more ? buffer : nil
        }
    }
}
