import AirgapBundle
import AirgapContent
import AirgapOCI
import AirgapRegistry
import AirgapTar
import Foundation

/// An image engine as the sink of a copy: an archive (an OCI layout and a Docker archive, in the
/// canonical encoding) written into the engine's load (`POST /images/load`, `podman load`, `ctr
/// images import`) as the blobs arrive, each through a verifier, with the names (index.json,
/// manifest.json) last, at commit. An engine cut off before that (a blob failed its check, the copy
/// was aborted) has blobs and no image to load, and its load fails.
public final class EngineSink: ContentSink, @unchecked Sendable { // begun, fed and ended by one copy, in order
    /// For messages ("the Docker engine", "podman").
    public let engineName: String
    /// Starts the engine's load of the archive the pipe carries (what it prints is not needed:
    /// the caller checks what the engine lists afterwards).
    let load: @Sendable (ByteBufferPipe) async throws -> [String]
    private let pipe = ByteBufferPipe()
    private let archive: BundleSink
    private let state = CutOff()
    private var loading: Task<[String], any Error>?

    public init(engineName: String, load: @escaping @Sendable (ByteBufferPipe) async throws -> [String]) {
        self.engineName = engineName
        self.load = load
        let pipe = self.pipe, state = self.state
        // Once cut off, the engine reads no more: what the source still hashes goes nowhere.
        archive = BundleSink(archive: .init(sink: { if !state.isCut { try pipe.send($0) } }, dockerView: true, namesLast: true))
    }

    public var description: String { engineName }
    public var order: SinkOrder { .digestOrder }

    public func begin(_ plan: CopyPlan) async throws {
        let load = self.load, pipe = self.pipe
        // However the engine's load ends, the side writing must not wait on it any longer. On a
        // thread of its own: feeding an engine's standard input blocks while it does not read.
        loading = Task(executorPreference: BlockingThread()) {
            defer { pipe.cancel() }
            return try await load(pipe)
        }
        try await archive.begin(plan)
    }

    public func holds(_ descriptor: Descriptor, for name: Reference) async throws -> Bool { false }

    public func blobWriter(_ descriptor: Descriptor, for name: Reference) async throws -> any BlobWriter {
        // Cut off: the source still hashes what follows (each damaged blob its own finding), and
        // none of it goes anywhere.
        if state.isCut { return HashingWriter(BlobVerifier(descriptor, source: "blob \(descriptor.digest) of \(name.familiarName)")) }
        return CuttingWriter(try await archive.blobWriter(descriptor, for: name), sink: self)
    }

    /// A blob failed its check: the engine's load is failed at once, not at the end of the source.
    func cutOff(_ error: any Error) {
        // Whether the engine had ended by itself before this: then its error is the one to tell.
        let engineEnded = pipe.wasCancelled
        guard state.cut(engineEndedFirst: engineEnded) else { return }
        pipe.fail(error)
    }

    final class CutOff: @unchecked Sendable {
        private let lock = NSLock()
        private var done = false
        private var engineEndedFirst = false
        var isCut: Bool { lock.withLock { done } }
        /// Cut by this side while the engine was still reading.
        var cutWhileReading: Bool { lock.withLock { done && !engineEndedFirst } }
        /// True the first time.
        func cut(engineEndedFirst ended: Bool) -> Bool {
            lock.withLock {
                guard !done else { return false }
                done = true
                engineEndedFirst = ended
                return true
            }
        }
    }

    /// The archive's writer for one blob, which cuts the engine off when the blob fails its check.
    final class CuttingWriter: BlobWriter, @unchecked Sendable {
        let inner: any BlobWriter
        let sink: EngineSink
        init(_ inner: any BlobWriter, sink: EngineSink) { self.inner = inner; self.sink = sink }
        var offset: Int64 { inner.offset }
        func write(_ bytes: UnsafeRawBufferPointer) throws { try inner.write(bytes) }
        func restart() throws { try inner.restart() }
        func commit() async throws -> Digest {
            do { return try await inner.commit() } catch { sink.cutOff(error); throw error }
        }
        func abandon(keepForResume: Bool) async {
            // A blob refused while written (its last chunk did not hash right) leaves its entry short.
            sink.cutOff(TarError("a blob failed its check"))
            await inner.abandon(keepForResume: false)
        }
    }

    /// Only checks what it is given.
    final class HashingWriter: BlobWriter, @unchecked Sendable {
        private var verifier: BlobVerifier
        init(_ verifier: BlobVerifier) { self.verifier = verifier }
        var offset: Int64 { verifier.byteCount }
        func write(_ bytes: UnsafeRawBufferPointer) throws { try verifier.update(bytes) }
        func restart() throws { verifier.reset() }
        func commit() async throws -> Digest { try verifier.finish() }
        func abandon(keepForResume: Bool) async {}
    }

    /// The engine ended its load before this side cut it off or finished (its error is the one to tell).
    public var engineGaveUp: Bool { pipe.wasCancelled && !state.cutWhileReading }

    public func commit(_ plan: CopyPlan) async throws {
        guard let loading else { throw ContentError(.missing, "the load into \(engineName) was not begun") }
        guard !state.isCut else { throw ContentError(.verification, "the load into \(engineName) was cut off") }
        do {
            try await archive.commit(plan)
        } catch {
            pipe.fail(error)
            if engineGaveUp { _ = try await loading.value } // the engine failed first: its error
            throw error
        }
        pipe.finish()
        _ = try await loading.value
    }

    /// The engine's error when it gave up first; nil when it is still reading, or done.
    public func engineError() async -> (any Error)? {
        guard engineGaveUp, let loading else { return nil }
        do { _ = try await loading.value; return nil } catch { return error }
    }

    public func abort() async {
        await archive.abort()
        cutOff(TarError("the load was stopped before the archive's end"))
        _ = try? await loading?.value
    }
}

/// A thread for one task's blocking work (a read that waits on a pipe): the task's code runs
/// there, not on the shared pool, whose threads are as many as the cores.
public final class BlockingThread: TaskExecutor, @unchecked Sendable { // the queue serialises the jobs
    private let queue = DispatchQueue(label: "airgap.blocking")
    public init() {}
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
