import AirgapContent
import AirgapOCI
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Manifest bytes exactly as the registry served them, with their digest and type.
public struct FetchedManifest: Sendable {
    public var data: Data
    public var mediaType: MediaType
    public var digest: Digest
    public var descriptor: Descriptor { Descriptor(mediaType: mediaType, digest: digest, size: Int64(data.count)) }
}

extension RegistryClient {
    static let manifestLimit = 8 << 20

    static func pullScope(_ repository: String) -> String { "repository:\(repository):pull" }
    static func pushScope(_ repository: String) -> String { "repository:\(repository):pull,push" }

    /// Fetches a manifest or index by tag or digest; checks the bytes against the requested digest
    /// and against `Docker-Content-Digest`.
    public func fetchManifest(_ reference: Reference, selector: String? = nil) async throws -> FetchedManifest {
        let selector = selector ?? reference.manifestSelector
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: MediaType.manifestAccept.map(\.rawValue).joined(separator: ", "))
        let response = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/manifests/\(selector)",
                                           headers: headers, scope: Self.pullScope(reference.repository)))
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: Self.manifestLimit) } catch {
            throw RegistryError(.protocolViolation, "the manifest \(reference.name):\(selector) is larger than \(Self.manifestLimit) bytes; refusing it")
        }
        try Self.check(response, body: body, what: "manifest", reference: reference, selector: selector)
        let data = Data(buffer: body)
        let expected = (try? Digest(parsing: selector))
        let algorithm = expected?.algorithm ?? .sha256
        var hasher = DigestHasher(algorithm)
        hasher.update(data)
        let digest = hasher.finalize()
        if let expected, digest != expected {
            throw RegistryError(.digestMismatch, "\(reference.registry) served a manifest for \(reference.name)@\(expected) whose digest is \(digest); refusing tampered or corrupt content")
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"), let claimed = try? Digest(parsing: header),
           claimed.algorithm == algorithm, claimed != digest {
            throw RegistryError(.digestMismatch, "\(reference.registry) says the manifest \(reference.name):\(selector) has digest \(claimed) but its bytes hash to \(digest); refusing it")
        }
        var mediaType = response.headers.first(name: "Content-Type").map { MediaType(String($0.split(separator: ";")[0]).trimmingCharacters(in: .whitespaces)) }
        if mediaType == nil || !(mediaType!.isManifest) { mediaType = detectManifestMediaType(data) }
        if let mediaType, mediaType.isSchema1 || (!mediaType.isManifest && Self.isSchema1(data)) {
            // Handed on so the graph walk says what schema 1 is and what to do.
            return FetchedManifest(data: data, mediaType: mediaType.isSchema1 ? mediaType : .dockerSchema1Signed, digest: digest)
        }
        guard let mediaType, mediaType.isManifest else {
            throw RegistryError(.unsupported, "\(reference.name):\(selector) is not an image manifest or index (type \(mediaType?.rawValue ?? "unknown")); only images can be copied")
        }
        return FetchedManifest(data: data, mediaType: mediaType, digest: digest)
    }

    /// Turns an error status into a sentence a user understands.
    static func check(_ response: HTTPClientResponse, body: ByteBuffer?, what: String, reference: Reference, selector: String) throws {
        let code = response.status.code
        guard !(200..<300).contains(code) else { return }
        let data = body.map { Data(buffer: $0) } ?? Data()
        let codes = RegistryErrorBody.codes(data)
        let detail = RegistryErrorBody.summary(data).map { " (\($0))" } ?? ""
        switch code {
        case 404:
            if codes.contains("NAME_UNKNOWN") {
                throw RegistryError(.notFound, "the repository \(reference.registry)/\(reference.repository) does not exist; check the name")
            }
            if what == "manifest" && selector.contains(":") == false {
                throw RegistryError(.notFound, "the tag '\(selector)' does not exist in \(reference.registry)/\(reference.repository); check the tag (see its tag list)")
            }
            throw RegistryError(.notFound, "\(what) \(selector) was not found in \(reference.registry)/\(reference.repository)\(detail)")
        case 401:
            throw RegistryError(.unauthorized, "access to \(reference.registry)/\(reference.repository) was denied: the repository does not exist or needs credentials; run 'login \(reference.registry)' and try again")
        case 403:
            throw RegistryError(.denied, "\(reference.registry) denied access to \(reference.repository)\(detail); check that your account may use it")
        default:
            throw RegistryError(.server, "\(reference.registry) answered HTTP \(code) for \(what) \(reference.repository):\(selector)\(detail)")
        }
    }

    static func isSchema1(_ data: Data) -> Bool {
        struct Probe: Decodable { var schemaVersion: Int? }
        return (try? JSONDecoder().decode(Probe.self, from: data))?.schemaVersion == 1
    }

    /// Downloads a blob into a writer (which verifies it). A cut connection is resumed with
    /// `Range` from the bytes the writer holds; a retry never re-downloads what was checked.
    public func copyBlob(_ reference: Reference, _ descriptor: Descriptor, into writer: any BlobWriter,
                         progress: @Sendable (Int64) -> Void = { _ in }) async throws {
        var failures = 0
        while true {
            do {
                try await streamBlob(reference, descriptor, into: writer, progress: progress)
                return
            } catch let error as RegistryError where error.kind == .network && failures + 1 < retryPolicy.attempts {
                failures += 1
                // Said, so the pause and the restart of the bar are not a mystery.
                let wait = delay(attempt: failures, retryAfter: nil)
                let from = writer.offset > 0 ? "resuming from byte \(writer.offset) of \(descriptor.size)" : "trying again"
                warn("note: \(error.message); \(from) in \(String(format: "%.0f", wait.rounded(.up)))s (attempt \(failures + 1) of \(retryPolicy.attempts))")
                try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
            }
        }
    }

    /// A small blob (a config) whole, checked against its descriptor.
    public func fetchBlobData(_ reference: Reference, _ descriptor: Descriptor, limit: Int64 = 16 << 20) async throws -> Data {
        guard descriptor.size <= limit else {
            throw RegistryError(.protocolViolation, "the blob \(descriptor.digest) of \(reference.familiarName) is said to be \(descriptor.size) bytes, more than \(limit >> 20) MiB; refusing to read it whole")
        }
        let memory = MemoryBlobWriter(descriptor, source: "the blob \(descriptor.digest) of \(reference.familiarName)")
        try await copyBlob(reference, descriptor, into: memory)
        do { try await memory.commit() } catch let error as ContentError {
            throw RegistryError(.digestMismatch, "\(reference.registry) served \(error.message)")
        }
        return memory.data
    }

    /// Streams a blob from the registry only to hash it (audits): true when it is there with the right bytes.
    public func blobMatches(_ reference: Reference, _ descriptor: Descriptor) async throws -> Bool {
        let response = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/blobs/\(descriptor.digest)",
                                           scope: Self.pullScope(reference.repository)))
        guard response.status == .ok else {
            _ = try? await response.body.collect(upTo: 1 << 16)
            if response.status == .notFound { return false }
            try Self.check(response, body: nil, what: "blob", reference: reference, selector: descriptor.digest.description)
            return false
        }
        var hasher = DigestHasher(descriptor.digest.algorithm)
        do {
            for try await chunk in response.body { chunk.withUnsafeReadableBytes { hasher.update($0) } }
        } catch { throw Self.mapTransportError(error, registry: reference.registry) }
        return hasher.byteCount == descriptor.size && hasher.finalize() == descriptor.digest
    }

    private func streamBlob(_ reference: Reference, _ descriptor: Descriptor, into writer: any BlobWriter,
                            progress: @Sendable (Int64) -> Void) async throws {
        if writer.offset >= descriptor.size { return }
        var headers = HTTPHeaders()
        let offset = writer.offset
        if offset > 0 { headers.add(name: "Range", value: "bytes=\(offset)-") }
        let response = try await send(Call(registry: reference.registry, path: "/v2/\(reference.repository)/blobs/\(descriptor.digest)",
                                           headers: headers, scope: Self.pullScope(reference.repository)))
        if !(200..<300).contains(response.status.code) {
            let body = try? await response.body.collect(upTo: 1 << 16)
            try Self.check(response, body: body, what: "blob", reference: reference, selector: descriptor.digest.description)
        }
        if offset > 0 && response.status != .partialContent {
            // The server ignored Range: start over.
            try writer.restart()
        }
        // What the writer refuses is the content's fault (or the disk's), not the network's.
        struct WriterFailure: Error { let error: any Error }
        do {
            for try await chunk in response.body {
                do { try chunk.withUnsafeReadableBytes { try writer.write($0) } } catch { throw WriterFailure(error: error) }
                progress(Int64(chunk.readableBytes))
            }
        } catch let failure as WriterFailure {
            if let error = failure.error as? ContentError, error.isVerificationFailure {
                throw RegistryError(.digestMismatch, "\(reference.registry) served \(error.description)")
            }
            throw failure.error
        } catch {
            throw Self.mapTransportError(error, registry: reference.registry)
        }
        if writer.offset < descriptor.size {
            throw RegistryError(.network, "the download of \(descriptor.digest) from \(reference.registry) stopped after \(writer.offset) of \(descriptor.size) bytes")
        }
    }
}
