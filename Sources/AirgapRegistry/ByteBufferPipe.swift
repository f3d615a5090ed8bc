import Foundation
import NIOCore

/// Hands bytes from a synchronous producer (a bundle being verified on its own thread) to an HTTP
/// body that streams them, holding at most `capacity` chunks: the producer waits when the
/// consumer is slow, and both ends can stop the other (`fail`, `cancel`).
public final class ByteBufferPipe: AsyncSequence, @unchecked Sendable {
    public typealias Element = ByteBuffer
    private let stream: AsyncThrowingStream<ByteBuffer, any Error>
    private let continuation: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
    private let slots: DispatchSemaphore
    private let capacity: Int
    private let lock = NSLock()
    private var cancelled = false

    public init(capacity: Int = 8) {
        self.capacity = capacity
        slots = DispatchSemaphore(value: capacity)
        (stream, continuation) = AsyncThrowingStream.makeStream(of: ByteBuffer.self, throwing: (any Error).self)
    }

    /// Blocks while `capacity` chunks wait to be sent; throws once the consumer has gone.
    public func send(_ bytes: UnsafeRawBufferPointer) throws {
        slots.wait()
        lock.lock()
        let gone = cancelled
        lock.unlock()
        if gone { slots.signal(); throw CancellationError() }
        continuation.yield(ByteBuffer(bytes: bytes))
    }

    /// The producer is done: the consumer sees the end after the chunks in flight.
    public func finish() { continuation.finish() }

    /// Called once when the producer fails, from its thread: a consumer that may be blocked
    /// outside the pipe (a write to a process that stopped reading) is stopped there.
    public var onFailure: (@Sendable () -> Void)? {
        get { lock.withLock { failureHook } }
        set { lock.withLock { failureHook = newValue } }
    }
    private var failureHook: (@Sendable () -> Void)?

    /// The producer failed: the consumer's read throws, so the request is aborted before its end.
    public func fail(_ error: any Error) {
        continuation.finish(throwing: error)
        let hook = lock.withLock { () -> (@Sendable () -> Void)? in defer { failureHook = nil }; return failureHook }
        hook?()
    }

    /// Whether the consumer went away (`cancel`) before the producer was done.
    public var wasCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }

    /// The consumer has gone: a waiting or later `send` throws instead of blocking.
    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
        for _ in 0..<capacity { slots.signal() }
        continuation.finish()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
        let slots: DispatchSemaphore
        public mutating func next() async throws -> ByteBuffer? {
            let chunk = try await inner.next()
            if chunk != nil { slots.signal() }
            return chunk
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inner: stream.makeAsyncIterator(), slots: slots) }
}
