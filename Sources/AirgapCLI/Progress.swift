import AirgapContent
import AirgapOCI
import AirgapTar
import AirgapTransfer
import ArgumentParser
import Foundation

/// How progress is shown: `auto` picks bars when standard error is a terminal, lines otherwise.
enum ProgressMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    case auto, tty, plain, none
}

/// `--progress`, shared by every command that moves or checks bytes.
struct ProgressOptions: ParsableArguments {
    @Option(help: ArgumentHelp("auto (bars on a terminal, lines otherwise), tty, plain (a line per blob and a total every 10 s) or none.", valueName: "MODE"))
    var progress: ProgressMode = .auto

    func renderer(verb: String, title: String? = nil, passVerb: String = "Reading", quiet: Bool) -> ProgressRenderer {
        ProgressRenderer(verb: verb, title: title, passVerb: passVerb, mode: quiet ? .none : progress)
    }
}

/// Renders transfer events (layers listed; manifests and configs only counted). On a terminal: a
/// bar per blob in flight and an overall bar with the rate and ETA, redrawn several times a second
/// from a smoothed rate (so the ETA moves, and says "stalled" when nothing arrives) with finished
/// blobs printed above. Otherwise: a line per blob and, every `plainInterval` seconds, a line with
/// the total so far. A read pass over a bundle (verify, load, audit, the check before push) is one
/// item of its own.
final class ProgressRenderer: @unchecked Sendable {
    enum Style { case bars, lines, silent }

    private struct Item {
        var label: String
        var size: Int64
        var done: Int64 = 0
    }

    private let lock = NSLock()
    private let style: Style
    private let verb: String
    private let passVerb: String
    private let started = Date()
    private var planSeconds: Double?

    // The copy: planned totals (from the engine), bytes moved, blobs found already there.
    private var plannedBytes: Int64?
    private var startedBytes: Int64 = 0
    private var doneBytes: Int64 = 0
    private var skippedBytes: Int64 = 0
    private var blobsDone = 0
    private var blobsSkipped = 0
    private var active: [Digest: Item] = [:]
    private var activeOrder: [Digest] = []

    // A read pass over a bundle or a store.
    private var pass: Item?
    /// Manifests and configs in flight: counted, never shown.
    private var unlisted = Set<Digest>()
    private var passStarted = Date()

    // The rate, smoothed with a time constant of a few seconds.
    private var meter = RateMeter()
    private var drawnLines = 0
    private var lastDraw = Date.distantPast
    private var nextPlainLine = Date()
    private let tickSeconds: Double
    /// What the overall bar is called (`Pull`, `Bundle`, `Push`); per-blob lines use `verb`.
    private let title: String
    private var timer: (any DispatchSourceTimer)?
    private var stopped = false

    /// Seconds between total lines without a terminal (AIRGAP_PROGRESS_INTERVAL overrides 10).
    static let plainInterval: Double = {
        guard let text = ProcessInfo.processInfo.environment["AIRGAP_PROGRESS_INTERVAL"], let value = Double(text), value > 0 else { return 10 }
        return value
    }()

    private nonisolated(unsafe) static var current: ProgressRenderer?
    private static let currentLock = NSLock()

    /// Seconds spent resolving references, once a pull has planned.
    var planningSeconds: Double? { lock.withLock { planSeconds } }

    init(verb: String, title: String? = nil, passVerb: String = "Reading", mode: ProgressMode) {
        self.verb = verb
        self.title = title ?? verb
        self.passVerb = passVerb
        let terminal = isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
        switch mode {
        case .none: style = .silent
        case .tty: style = .bars
        case .plain: style = .lines
        case .auto: style = terminal ? .bars : .lines
        }
        tickSeconds = style == .bars ? 0.2 : min(0.25, Self.plainInterval / 4)
        nextPlainLine = Date().addingTimeInterval(Self.plainInterval)
        guard style != .silent else { return }
        Self.currentLock.withLock { Self.current = self }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + tickSeconds, repeating: tickSeconds)
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        self.timer = timer
    }

    convenience init(verb: String, quiet: Bool) {
        self.init(verb: verb, mode: quiet ? .none : .auto)
    }

    deinit { timer?.cancel() }

    var summary: (transferred: Int64, skipped: Int64, blobs: Int, skippedBlobs: Int, seconds: Double) {
        lock.withLock { (doneBytes, skippedBytes, blobsDone, blobsSkipped, Date().timeIntervalSince(started)) }
    }

    func handle(_ event: TransferEvent) {
        lock.withLock {
            guard !stopped else { return }
            switch event {
            case .resolved(let reference, let descriptor):
                line("\(reference.familiarDescription): resolved to \(descriptor.digest)")
            case .planned(let images, let seconds):
                planSeconds = seconds
                line(String(format: "Resolved %d image%@ in %.2fs", images, images == 1 ? "" : "s", seconds))
            case .totals(let bytes, _):
                plannedBytes = (plannedBytes ?? 0) + bytes
            case .blobStarted(let digest, let size, let listed):
                startedBytes += size
                guard listed else { unlisted.insert(digest); break }
                if active[digest] == nil { activeOrder.append(digest) }
                active[digest] = Item(label: digest.shortID, size: size)
            case .blobProgress(let digest, let bytes):
                doneBytes += bytes
                active[digest]?.done += bytes
                meter.add(bytes)
            case .blobFinished(let digest, let size):
                blobsDone += 1
                guard unlisted.remove(digest) == nil else { break }
                remove(digest)
                line("\(digest.shortID): \(verb) complete (\(Format.size(size)))")
            case .blobSkipped(let digest, let size, let listed):
                blobsSkipped += 1
                skippedBytes += size
                if listed { line("\(digest.shortID): already exists") }
            case .blobMounted(let digest, let size, let from, let listed):
                blobsSkipped += 1
                skippedBytes += size
                if listed { line("\(digest.shortID): mounted from \(from)") }
            case .manifestWritten:
                break // each command prints what it wrote, once, on standard output
            case .passStarted(let label, let bytes):
                pass = Item(label: label, size: bytes)
                passStarted = Date()
                meter = RateMeter()
                nextPlainLine = Date().addingTimeInterval(Self.plainInterval)
                if style == .lines { line("\(passVerb) \(label) (\(Format.size(bytes)))") }
            case .passProgress(let bytes):
                pass?.done += bytes
                meter.add(bytes)
            case .passFinished:
                if let pass {
                    let seconds = max(Date().timeIntervalSince(passStarted), 0.001)
                    line("\(pass.label): \(Format.size(pass.done)) read in \(String(format: "%.1f", seconds))s (\(Format.size(Int64(Double(pass.done) / seconds)))/s)")
                }
                pass = nil
                meter = RateMeter()
            case .note(let text):
                line("note: \(text)")
            }
            if style == .bars { draw(force: false) }
        }
    }

    private func remove(_ digest: Digest) {
        active[digest] = nil
        activeOrder.removeAll { $0 == digest }
    }

    /// Clears the bars, removes the renderer; what is printed after it stays on screen.
    func finish() {
        lock.withLock { stop() }
    }

    /// Stops whichever renderer is drawing, before an error sentence is printed.
    static func stopActive() {
        let renderer = currentLock.withLock { current }
        renderer?.finish()
    }

    /// Writes a line to standard error above the bars (printErr goes through here while they are drawn).
    static func writeAbove(_ text: String) -> Bool {
        guard let renderer = currentLock.withLock({ current }) else { return false }
        return renderer.lock.withLock {
            guard !renderer.stopped, renderer.style == .bars else { return false }
            writeOut(2, renderer.clearSequence() + text + renderer.barsText())
            return true
        }
    }

    private func stop() {
        guard !stopped else { return }
        stopped = true
        timer?.cancel()
        timer = nil
        if style == .bars { writeOut(2, clearSequence()) }
        Self.currentLock.withLock { if Self.current === self { Self.current = nil } }
    }

    private func tick() {
        lock.withLock {
            guard !stopped else { return }
            meter.sample()
            switch style {
            case .bars: draw(force: true)
            case .lines:
                // Due on a fixed cadence from the start, not from the last tick that printed.
                let now = Date()
                guard now >= nextPlainLine.addingTimeInterval(-tickSeconds / 2) else { return }
                nextPlainLine = max(nextPlainLine.addingTimeInterval(Self.plainInterval), now.addingTimeInterval(Self.plainInterval / 2))
                guard pass != nil || !active.isEmpty else { return }
                writeOut(2, totalLine(width: .max) + "\n")
            case .silent: return
            }
        }
    }

    private func line(_ raw: String) {
        // Names, references and notes may come from a bundle or a registry: never raw to a terminal.
        let text = EscapedText.escape(raw)
        switch style {
        case .silent: return
        case .lines:
            writeOut(2, text + "\n")
        case .bars:
            // One write: the bars cleared, the line, the bars again (two writes flicker).
            writeOut(2, clearSequence() + text + "\n" + barsText())
            lastDraw = Date()
        }
    }

    // MARK: drawing

    /// Moves to the start of the bars and erases them (empty when none are drawn).
    private func clearSequence() -> String {
        defer { drawnLines = 0 }
        guard drawnLines > 0 else { return "" }
        return "\r" + (drawnLines > 1 ? "\u{1B}[\(drawnLines - 1)A" : "") + "\u{1B}[J"
    }

    /// At most ten redraws a second from events; the timer redraws regardless, so the rate and
    /// ETA move while nothing arrives.
    private func draw(force: Bool) {
        guard style == .bars, !stopped else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        writeOut(2, clearSequence() + barsText())
    }

    /// The bars, fitted to the terminal's width; sets how many lines they take.
    private func barsText() -> String {
        let width = max(Self.terminalWidth() - 1, 20)
        var lines: [String] = []
        if pass == nil {
            for key in activeOrder.prefix(4) {
                guard let item = active[key] else { continue }
                lines.append(Self.fit(label: item.label + ":", done: item.done, total: item.size, tail: "\(Format.size(item.done))/\(Format.size(item.size))", maxBar: 20, width: width))
            }
            if activeOrder.count > 4 { lines.append(String("… and \(activeOrder.count - 4) more in flight".prefix(width))) }
        }
        if pass != nil || !active.isEmpty || plannedBytes != nil { lines.append(totalLine(width: width)) }
        drawnLines = lines.count
        return lines.joined(separator: "\n")
    }

    /// The overall line: what is done of what is planned, the smoothed rate and the ETA.
    private func totalLine(width: Int) -> String {
        let (label, done, total): (String, Int64, Int64)
        if let pass {
            (label, done, total) = ("\(passVerb) \(pass.label)", min(max(pass.done, 0), pass.size), pass.size)
        } else {
            let moved = doneBytes + skippedBytes
            (label, done, total) = (title, moved, max(plannedBytes ?? (startedBytes + skippedBytes), moved))
        }
        let tail = "\(Format.size(done))/\(Format.size(total))\(percent(done, total))\(rateAndETA(remaining: total - done))"
        guard style == .bars else { return "\(label)\(pass == nil ? " progress" : ""): \(tail)" }
        return Self.fit(label: label, done: done, total: total, tail: tail, maxBar: 30, width: width)
    }

    /// `LABEL [bar] TAIL` in `width` columns: the bar shrinks first, then the label loses its
    /// middle; the numbers are kept whole.
    static func fit(label: String, done: Int64, total: Int64, tail: String, maxBar: Int, width: Int) -> String {
        let room = width - tail.count - 2
        var label = label
        let minBar = 8
        if label.count + minBar + 2 > room {
            let keep = max(room - minBar - 2, 0)
            if keep < 8 { label = "" } else if label.count > keep {
                let head = (keep - 1) / 2, tailCount = keep - 1 - head
                label = String(label.prefix(head)) + "…" + String(label.suffix(tailCount))
            }
        }
        let barWidth = min(maxBar, room - label.count - (label.isEmpty ? 0 : 1) - 2)
        let bar = barWidth >= 3 ? bar(done, of: total, width: barWidth) : ""
        let line = [label, bar, tail].filter { !$0.isEmpty }.joined(separator: " ")
        return String(line.prefix(width))
    }

    private func percent(_ done: Int64, _ total: Int64) -> String {
        guard total > 0, style == .lines else { return "" }
        return " (\(Int(Double(done) * 100 / Double(total)))%)"
    }

    /// Rate and ETA once a second of bytes has been seen; "stalled Ns" instead after two seconds
    /// with none (a decaying rate then would only suggest an ETA that is not there).
    private func rateAndETA(remaining: Int64) -> String {
        if let stalled = meter.stalledSeconds(), stalled >= 2 { return ", stalled \(Int(stalled))s" }
        guard let rate = meter.rate else { return "" }
        let speed = " \(Format.size(Int64(rate)))/s"
        guard meter.isSettled(), rate >= 1, remaining > 0 else { return speed }
        return "\(speed) ETA \(Self.duration(Double(remaining) / rate))"
    }

    static func bar(_ done: Int64, of total: Int64, width: Int) -> String {
        let filled = total > 0 ? min(width, Int(Double(width) * Double(min(done, total)) / Double(total))) : 0
        let head = filled < width && filled > 0 ? ">" : ""
        return "[" + String(repeating: "=", count: max(filled - head.count, 0)) + head + String(repeating: " ", count: width - filled) + "]"
    }

    /// `42s`, `3m07s`, `1h05m`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }
}

/// Bytes per second: the average since the first byte for the first `tau` seconds (a few early
/// samples say little), then smoothed exponentially with time constant `tau`. Samples are taken
/// on a timer, so the rate falls while nothing arrives instead of holding its last value.
/// Negative amounts (bytes counted again elsewhere) lower what is pending, never the rate below 0.
struct RateMeter {
    var tau: Double = 3
    private var smoothed: Double?
    private var pending: Int64 = 0
    private var total: Int64 = 0
    private var firstByte: Date?
    private var lastSample: Date?
    private var lastByte: Date?

    mutating func add(_ bytes: Int64, now: Date = Date()) {
        pending += bytes
        total += bytes
        guard bytes > 0 else { return }
        if firstByte == nil { firstByte = now; lastSample = now }
        lastByte = now
    }

    mutating func sample(now: Date = Date()) {
        guard let last = lastSample, let first = firstByte else { return }
        let dt = now.timeIntervalSince(last)
        guard dt >= 0.1 else { return }
        let elapsed = now.timeIntervalSince(first)
        if elapsed < tau {
            smoothed = max(Double(total), 0) / max(elapsed, dt)
        } else {
            let instant = max(Double(pending), 0) / dt
            let current = smoothed ?? instant
            smoothed = current + (1 - exp(-dt / tau)) * (instant - current)
        }
        pending = 0
        lastSample = now
    }

    var rate: Double? { smoothed }

    /// A second of bytes seen: enough for an ETA worth showing.
    func isSettled(now: Date = Date()) -> Bool { firstByte.map { now.timeIntervalSince($0) >= 1 } ?? false }

    /// Seconds since the last byte, once bytes have arrived.
    func stalledSeconds(now: Date = Date()) -> Double? { lastByte.map { now.timeIntervalSince($0) } }
}
