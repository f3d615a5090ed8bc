import AirgapContent
import AirgapOCI
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

extension RegistryClient {
    /// Blobs up to this size go in one PUT; larger ones in PATCH chunks of `chunkSize`.
    public static let monolithicLimit: Int64 = 32 << 20
    public static let chunkSize: Int64 = 64 << 20

    /// HEAD a blob: its size when the registry has it, else nil.
    public func blobSize(_ reference: Reference, _ digest: Digest, push: Bool = false) async throws -> Int64? {
        let response = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/blobs/\(digest)", method: .HEAD,
                                           scope: push ? Self.pushScope(reference.repository) : Self.pullScope(reference.repository)))
        switch response.status.code {
        case 200: return response.headers.first(name: "Content-Length").flatMap { Int64($0) } ?? 0
        case 404: return nil
        default:
            try Self.check(response, body: nil, what: "blob", reference: reference, selector: digest.description)
            return nil
        }
    }

    /// Asks the registry to link a blob it holds in another repository. True when mounted.
    public func mountBlob(_ reference: Reference, _ digest: Digest, from source: String) async throws -> Bool {
        let scope = Self.pushScope(reference.repository) + " " + Self.pullScope(source)
        let response = try await send(Call(registry: reference.registry,
                                           path: "/v2/\(reference.repository)/blobs/uploads/?mount=\(digest)&from=\(source)",
                                           method: .POST, scope: scope, idempotent: false))
        _ = try? await response.body.collect(upTo: 1 << 16)
        if response.status == .created { return true }
        if response.status == .accepted, let location = response.headers.first(name: "Location") {
            // Not mounted: an upload session was opened instead; cancel it so it does not linger.
            if let url = try? await uploadURL(location, registry: reference.registry) {
                _ = try? await send(Call(registry: reference.registry, path: "", method: .DELETE,
                                         scope: Self.pushScope(reference.repository), idempotent: false, absoluteURL: url))
            }
        }
        return false
    }

    func uploadURL(_ location: String, registry: String) async throws -> String {
        let endpoint = try await endpoint(registry)
        guard let url = URL(string: location, relativeTo: URL(string: endpoint.baseURL + "/v2/"))?.absoluteString else {
            throw RegistryError(.protocolViolation, "\(registry) gave an unreadable upload location")
        }
        return url
    }

    static func appendingQuery(_ url: String, _ item: String) -> String {
        url + (url.contains("?") ? "&" : "?") + item
    }

    /// Uploads a blob from a file: one PUT for small blobs, PATCH chunks then PUT for large ones.
    public func uploadBlob(_ reference: Reference, _ descriptor: Descriptor, fromFile path: String,
                           progress: @Sendable @escaping (Int64) -> Void = { _ in }) async throws {
        try await uploadBlob(reference, descriptor, from: .whole(path, size: descriptor.size), progress: progress)
    }

    /// Uploads a blob whose bytes lie in file segments (a bundle's volumes), hashing them on the way.
    ///
    /// An upload session is not safe to repeat request by request, so a temporary failure anywhere in
    /// it (5xx, 429, a dropped connection) starts a new session, after checking that the registry
    /// did not in fact complete the last one.
    public func uploadBlob(_ reference: Reference, _ descriptor: Descriptor, from source: FileSegments,
                           progress: @Sendable @escaping (Int64) -> Void = { _ in }) async throws {
        var attempt = 0
        let counter = UploadProgress(progress)
        while true {
            attempt += 1
            do {
                try await uploadSession(reference, descriptor, from: source, reached: counter.reached)
                counter.complete(descriptor.size)
                return
            } catch let error as RegistryError where error.isTemporary && attempt < retryPolicy.attempts {
                try await Task.sleep(nanoseconds: UInt64(delay(attempt: attempt, retryAfter: nil) * 1e9))
                if try await blobSize(reference, descriptor.digest, push: true) == descriptor.size {
                    counter.complete(descriptor.size)
                    return
                }
            }
        }
    }

    /// `reached` is told how far into the blob the bytes handed to the connection go (a megabyte
    /// at a time), not when a request completes: a 32 MiB PUT or 64 MiB PATCH would otherwise
    /// freeze the ETA. A request body sent again (after a 401 or a redirect) starts again from
    /// its own start, so nothing is counted twice.
    private func uploadSession(_ reference: Reference, _ descriptor: Descriptor, from source: FileSegments,
                               reached: @escaping @Sendable (Int64) -> Void) async throws {
        let scope = Self.pushScope(reference.repository)
        let start = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/blobs/uploads/",
                                        method: .POST, scope: scope, idempotent: false))
        let startBody = try? await start.body.collect(upTo: 1 << 16)
        guard start.status == .accepted, let location = start.headers.first(name: "Location") else {
            try Self.check(start, body: startBody, what: "upload", reference: reference, selector: descriptor.digest.description)
            throw RegistryError(.protocolViolation, "\(reference.registry) did not open an upload session (HTTP \(start.status.code))")
        }
        var url = try await uploadURL(location, registry: reference.registry)
        let size = descriptor.size
        if size > Self.monolithicLimit {
            // The chunks are hashed as they go; the PUT that commits them goes only if they add up to the digest.
            let running = RunningDigest()
            var offset: Int64 = 0
            while offset < size {
                let length = min(Self.chunkSize, size - offset)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/octet-stream")
                headers.add(name: "Content-Range", value: "\(offset)-\(offset + length - 1)")
                headers.add(name: "Content-Length", value: "\(length)")
                let part = source.slice(from: offset, length: length)
                // Each attempt at this chunk hashes into its own copy of the running digest; the
                // copy of the attempt the registry accepted is the one kept.
                let attempts = AttemptDigests(running)
                let base = offset
                let response = try await send(Call(registry: reference.registry, path: "", method: .PATCH, headers: headers, scope: scope,
                                                   makeBody: {
                                                       let tally = ByteTally()
                                                       return .stream(SegmentChunks(segments: part, expected: nil, running: attempts.next(),
                                                                                    onBytes: { reached(base + tally.add($0)) }), length: .known(length))
                                                   },
                                                   idempotent: false, absoluteURL: url))
                let body = try? await response.body.collect(upTo: 1 << 16)
                guard response.status == .accepted, let next = response.headers.first(name: "Location") else {
                    try Self.check(response, body: body, what: "upload chunk", reference: reference, selector: descriptor.digest.description)
                    throw RegistryError(.protocolViolation, "\(reference.registry) did not accept a chunk of \(descriptor.digest) (HTTP \(response.status.code))")
                }
                attempts.keepLast()
                url = try await uploadURL(next, registry: reference.registry)
                offset += length
            }
            let actual = running.finalize()
            guard actual == descriptor.digest else {
                throw RegistryError(.digestMismatch, "the bytes read for \(descriptor.digest) hash to \(actual); the source changed or is damaged since it was verified, so the upload is not committed")
            }
            let response = try await send(Call(registry: reference.registry, path: "", method: .PUT, scope: scope, idempotent: false,
                                               absoluteURL: Self.appendingQuery(url, "digest=\(descriptor.digest)")))
            let body = try? await response.body.collect(upTo: 1 << 16)
            try finishUpload(response, body: body, reference: reference, descriptor: descriptor)
        } else {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/octet-stream")
            headers.add(name: "Content-Length", value: "\(size)")
            let digest = descriptor.digest
            let response = try await send(Call(registry: reference.registry, path: "", method: .PUT, headers: headers, scope: scope,
                                               makeBody: {
                                                   let tally = ByteTally()
                                                   return .stream(SegmentChunks(segments: source, expected: digest, onBytes: { reached(tally.add($0)) }), length: .known(size))
                                               },
                                               idempotent: false, absoluteURL: Self.appendingQuery(url, "digest=\(descriptor.digest)")))
            let body = try? await response.body.collect(upTo: 1 << 16)
            try finishUpload(response, body: body, reference: reference, descriptor: descriptor)
        }
    }

    private func finishUpload(_ response: HTTPClientResponse, body: ByteBuffer?, reference: Reference, descriptor: Descriptor) throws {
        guard response.status == .created else {
            let data = body.map { Data(buffer: $0) } ?? Data()
            if RegistryErrorBody.codes(data).contains("DIGEST_INVALID") {
                throw RegistryError(.digestMismatch, "\(reference.registry) computed a different digest for the upload of \(descriptor.digest); the local copy is corrupt")
            }
            try Self.check(response, body: body, what: "upload", reference: reference, selector: descriptor.digest.description)
            throw RegistryError(.protocolViolation, "\(reference.registry) did not complete the upload of \(descriptor.digest) (HTTP \(response.status.code))")
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"), let digest = try? Digest(parsing: header), digest != descriptor.digest {
            throw RegistryError(.digestMismatch, "\(reference.registry) stored the upload of \(descriptor.digest) as \(digest)")
        }
    }

    /// PUTs the exact manifest bytes under a tag or digest, and checks the digest the registry reports.
    public func putManifest(_ reference: Reference, selector: String, data: Data, mediaType: MediaType) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: mediaType.rawValue)
        headers.add(name: "Content-Length", value: "\(data.count)")
        let bytes = ByteBuffer(data: data)
        let response = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/manifests/\(selector)",
                                           method: .PUT, headers: headers, scope: Self.pushScope(reference.repository),
                                           makeBody: { .bytes(bytes) }))
        let body = try? await response.body.collect(upTo: 1 << 16)
        guard response.status == .created || response.status == .ok else {
            try Self.check(response, body: body, what: "manifest upload", reference: reference, selector: selector)
            throw RegistryError(.protocolViolation, "\(reference.registry) refused the manifest \(selector) (HTTP \(response.status.code))")
        }
        let expected = Digest.sha256(of: data)
        if let header = response.headers.first(name: "Docker-Content-Digest"), let digest = try? Digest(parsing: header), digest != expected {
            throw RegistryError(.digestMismatch, "\(reference.registry) stored the manifest \(selector) as \(digest) instead of \(expected)")
        }
    }
}

/// Reports an upload's progress from how far into the blob it has got: whatever is sent again
/// (a new session, a body resent after a 401) counts only beyond the furthest point reached.
final class UploadProgress: @unchecked Sendable {
    private let lock = NSLock()
    private let report: @Sendable (Int64) -> Void
    private var reported: Int64 = 0

    init(_ report: @escaping @Sendable (Int64) -> Void) { self.report = report }

    var reached: @Sendable (Int64) -> Void { { [self] total in advance(to: total) } }

    func complete(_ size: Int64) { advance(to: size) }

    private func advance(to total: Int64) {
        let delta: Int64 = lock.withLock {
            guard total > reported else { return 0 }
            defer { reported = total }
            return total - reported
        }
        if delta > 0 { report(delta) }
    }
}

/// Bytes one request body has handed on so far.
final class ByteTally: @unchecked Sendable {
    private let lock = NSLock()
    private var total: Int64 = 0
    func add(_ bytes: Int64) -> Int64 { lock.withLock { total += bytes; return total } }
}

/// The running digest of a chunked upload, one copy per attempt at a chunk: a body sent twice
/// (after a 401 or a redirect) must not be hashed twice.
final class AttemptDigests: @unchecked Sendable {
    private let lock = NSLock()
    private let running: RunningDigest
    private var last: RunningDigest?
    init(_ running: RunningDigest) { self.running = running }
    func next() -> RunningDigest {
        let copy = running.copy()
        lock.withLock { last = copy }
        return copy
    }
    /// The chunk was accepted: the running digest continues from the attempt that sent it.
    func keepLast() { if let last = lock.withLock({ last }) { running.adopt(last) } }
}
