@testable import AirgapRegistry
import AirgapOCI
import Foundation
import Testing

/// A request body can be sent twice (after a 401 the client authenticates and sends it again; a
/// redirect does the same): the chunked upload's running digest and its progress must count the
/// chunk once, or a long push fails with "the source changed" and the bar overshoots.
struct UploadAccountingTests {
    func feed(_ digest: RunningDigest, _ text: String) { Data(text.utf8).withUnsafeBytes { digest.update($0) } }

    @Test func aChunkSentTwiceIsHashedOnce() {
        let running = RunningDigest()
        feed(running, "first chunk;")
        let attempts = AttemptDigests(running)
        feed(attempts.next(), "second chunk, sent once and refused;")
        feed(attempts.next(), "second chunk;")
        attempts.keepLast()
        #expect(running.finalize() == Digest.sha256(of: Data("first chunk;second chunk;".utf8)))
    }

    @Test func progressCountsHowFarTheUploadGotNotHowMuchWasSent() {
        final class Sum: @unchecked Sendable { let lock = NSLock(); var total: Int64 = 0 }
        let sum = Sum()
        let progress = UploadProgress { bytes in sum.lock.withLock { sum.total += bytes } }
        for point in [10, 40, 64, 5, 30, 64, 100] as [Int64] { progress.reached(point) } // a body resent from its start
        #expect(sum.total == 100)
        progress.complete(128)
        #expect(sum.total == 128)
    }
}
