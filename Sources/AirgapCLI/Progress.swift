import AirgapContent
import AirgapOCI
import AirgapTransfer
import Foundation

/// Renders transfer events: a live overall line (bytes, rate, ETA) on a terminal, plain lines otherwise.
final class ProgressRenderer: @unchecked Sendable {
    private let lock = NSLock()
    private let interactive: Bool
    private let quiet: Bool
    private let verb: String
    private var totalBytes: Int64 = 0
    private var doneBytes: Int64 = 0
    private var skippedBytes: Int64 = 0
    private var blobsDone = 0
    private var blobsSkipped = 0
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var planSeconds: Double?
    /// Seconds spent resolving references, once a pull has planned.
    var planningSeconds: Double? { lock.withLock { planSeconds } }

    init(verb: String, quiet: Bool) {
        self.verb = verb
        self.quiet = quiet
        interactive = isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    var summary: (transferred: Int64, skipped: Int64, blobs: Int, skippedBlobs: Int, seconds: Double) {
        lock.withLock { (doneBytes, skippedBytes, blobsDone, blobsSkipped, Date().timeIntervalSince(started)) }
    }

    func handle(_ event: TransferEvent) {
        lock.withLock {
            switch event {
            case .resolved(let reference, let descriptor):
                line("\(reference.familiarDescription): resolved to \(descriptor.digest)")
            case .planned(let images, let seconds):
                planSeconds = seconds
                line(String(format: "Resolved %d image%@ in %.2fs", images, images == 1 ? "" : "s", seconds))
            case .blobStarted(_, let size):
                totalBytes += size
            case .blobProgress(_, let bytes):
                doneBytes += bytes
                draw()
            case .blobFinished(let digest, let size):
                blobsDone += 1
                line("\(digest.shortID): \(verb) complete (\(Format.size(size)))")
            case .blobSkipped(let digest, let size):
                blobsSkipped += 1
                skippedBytes += size
                line("\(digest.shortID): already exists")
            case .blobMounted(let digest, _, let from):
                blobsSkipped += 1
                line("\(digest.shortID): mounted from \(from)")
            case .manifestWritten(let reference, let digest):
                line("\(reference.familiarDescription): digest: \(digest)")
            case .note(let text):
                line("note: \(text)")
            }
        }
    }

    private func line(_ text: String) {
        guard !quiet else { return }
        if interactive { writeOut(2, "\r\u{1B}[K") }
        writeOut(2, (text + "\n"))
        draw(force: true)
    }

    private func draw(force: Bool = false) {
        guard interactive, !quiet else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(doneBytes) / elapsed
        let remaining = max(totalBytes - doneBytes, 0)
        let eta = rate > 0 ? Int(Double(remaining) / rate) : 0
        let width = 30
        let filled = totalBytes > 0 ? Int(Double(width) * Double(doneBytes) / Double(totalBytes)) : 0
        let bar = String(repeating: "=", count: min(filled, width)) + String(repeating: " ", count: max(width - filled, 0))
        let text = "\r\u{1B}[K[\(bar)] \(Format.size(doneBytes))/\(Format.size(totalBytes)) \(Format.size(Int64(rate)))/s ETA \(eta)s"
        writeOut(2, text)
    }

    func finish() {
        guard interactive, !quiet else { return }
        lock.withLock { writeOut(2, "\r\u{1B}[K") }
    }
}
