import AirgapContent
import AirgapOCI
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

    func renderer(verb: String, passVerb: String = "Reading", quiet: Bool) -> ProgressRenderer {
        ProgressRenderer(verb: verb, passVerb: passVerb, mode: quiet ? .none : progress)
    }
}

/// Renders transfer events. On a terminal: a bar per blob in flight and an overall bar with the
/// rate and ETA, redrawn several times a second from a smoothed rate (so the ETA moves, and says
/// "stalled" when nothing arrives) with finished blobs printed above. Otherwise: a line per blob
/// and, every `plainInterval` seconds, a line with the total so far. A read pass over a bundle
/// (verify, load, audit, the check before push) is one item of its own.
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
    private var active: [String: Item] = [:]
    private var activeOrder: [String] = []

    // A read pass over a bundle or a store.
    private var pass: Item?
    private var passStarted = Date()

    // The rate, smoothed with a time constant of a few seconds.
    private var meter = RateMeter()
    private var drawnLines = 0
    private var lastPlainLine = Date()
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

    init(verb: String, passVerb: String = "Reading", mode: ProgressMode) {
        self.verb = verb
        self.passVerb = passVerb
        let terminal = isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
        switch mode {
        case .none: style = .silent
        case .tty: style = .bars
        case .plain: style = .lines
        case .auto: style = terminal ? .bars : .lines
        }
        guard style != .silent else { return }
        Self.currentLock.withLock { Self.current = self }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        let tick = style == .bars ? 0.2 : min(1, Self.plainInterval)
        timer.schedule(deadline: .now() + tick, repeating: tick)
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
            case .blobStarted(let digest, let size):
                startedBytes += size
                let key = digest.description
                if active[key] == nil { activeOrder.append(key) }
                active[key] = Item(label: digest.shortID, size: size)
            case .blobProgress(let digest, let bytes):
                doneBytes += bytes
                active[digest.description]?.done += bytes
                meter.add(bytes)
            case .blobFinished(let digest, let size):
                blobsDone += 1
                remove(digest)
                line("\(digest.shortID): \(verb) complete (\(Format.size(size)))")
            case .blobSkipped(let digest, let size):
                blobsSkipped += 1
                skippedBytes += size
                line("\(digest.shortID): already exists")
            case .blobMounted(let digest, let size, let from):
                blobsSkipped += 1
                skippedBytes += size
                line("\(digest.shortID): mounted from \(from)")
            case .manifestWritten(let reference, let digest):
                line("\(reference.familiarDescription): digest: \(digest)")
            case .passStarted(let label, let bytes):
                pass = Item(label: label, size: bytes)
                passStarted = Date()
                meter = RateMeter()
                lastPlainLine = Date()
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
            if style == .bars { draw() }
        }
    }

    private func remove(_ digest: Digest) {
        let key = digest.description
        active[key] = nil
        activeOrder.removeAll { $0 == key }
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
            renderer.clearBars()
            writeOut(2, text)
            renderer.draw()
            return true
        }
    }

    private func stop() {
        guard !stopped else { return }
        stopped = true
        timer?.cancel()
        timer = nil
        if style == .bars { clearBars() }
        Self.currentLock.withLock { if Self.current === self { Self.current = nil } }
    }

    private func tick() {
        lock.withLock {
            guard !stopped else { return }
            meter.sample()
            switch style {
            case .bars: draw()
            case .lines:
                guard Date().timeIntervalSince(lastPlainLine) >= Self.plainInterval else { return }
                guard pass != nil || !active.isEmpty else { return }
                lastPlainLine = Date()
                writeOut(2, totalLine() + "\n")
            case .silent: return
            }
        }
    }

    private func line(_ text: String) {
        switch style {
        case .silent: return
        case .lines:
            writeOut(2, text + "\n")
        case .bars:
            clearBars()
            writeOut(2, text + "\n")
        }
    }

    // MARK: drawing

    private func clearBars() {
        guard drawnLines > 0 else { return }
        writeOut(2, "\r" + (drawnLines > 1 ? "\u{1B}[\(drawnLines - 1)A" : "") + "\u{1B}[J")
        drawnLines = 0
    }

    private func draw() {
        guard style == .bars, !stopped else { return }
        let width = max(Self.terminalWidth() - 1, 20)
        var lines: [String] = []
        if pass == nil {
            for key in activeOrder.prefix(4) {
                guard let item = active[key] else { continue }
                lines.append("\(item.label): \(Self.bar(item.done, of: item.size, width: 20)) \(Format.size(item.done))/\(Format.size(item.size))")
            }
            if activeOrder.count > 4 { lines.append("… and \(activeOrder.count - 4) more in flight") }
        }
        if pass != nil || !active.isEmpty || plannedBytes != nil { lines.append(totalLine()) }
        guard !lines.isEmpty else { clearBars(); return }
        let text = lines.map { String($0.prefix(width)) }.joined(separator: "\n")
        clearBars()
        writeOut(2, text)
        drawnLines = lines.count
    }

    /// The overall line: what is done of what is planned, the smoothed rate and the ETA.
    private func totalLine() -> String {
        let bars = style == .bars
        if let pass {
            let head = bars ? "\(passVerb) \(pass.label) \(Self.bar(pass.done, of: pass.size, width: 30))" : "\(passVerb) \(pass.label):"
            return "\(head) \(Format.size(pass.done))/\(Format.size(pass.size))\(percent(pass.done, pass.size)) \(rateAndETA(remaining: pass.size - pass.done))"
        }
        let total = max(plannedBytes ?? (startedBytes + skippedBytes), doneBytes + skippedBytes)
        let done = doneBytes + skippedBytes
        let head = bars ? "\(verb) \(Self.bar(done, of: total, width: 30))" : "\(verb) progress:"
        return "\(head) \(Format.size(done))/\(Format.size(total))\(percent(done, total)) \(rateAndETA(remaining: total - done))"
    }

    private func percent(_ done: Int64, _ total: Int64) -> String {
        guard total > 0, style == .lines else { return "" }
        return " (\(Int(Double(done) * 100 / Double(total)))%)"
    }

    private func rateAndETA(remaining: Int64) -> String {
        guard let rate = meter.rate else { return "" }
        let speed = "\(Format.size(Int64(rate)))/s"
        if let stalled = meter.stalledSeconds(), stalled >= 3 { return "\(speed), stalled \(Int(stalled))s" }
        guard rate >= 1, remaining > 0 else { return speed }
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

/// Bytes per second, smoothed exponentially (time constant `tau`): samples are taken on a timer,
/// so the rate falls while nothing arrives instead of holding its last value.
struct RateMeter {
    var tau: Double = 3
    private(set) var rate: Double?
    private var pending: Int64 = 0
    private var firstByte: Date?
    private var lastSample: Date?
    private var lastByte: Date?

    mutating func add(_ bytes: Int64, now: Date = Date()) {
        guard bytes > 0 else { return }
        if firstByte == nil { firstByte = now; lastSample = now }
        lastByte = now
        pending += bytes
    }

    mutating func sample(now: Date = Date()) {
        guard let last = lastSample else { return }
        let dt = now.timeIntervalSince(last)
        guard dt >= 0.1 else { return }
        let instant = Double(pending) / dt
        if let rate {
            self.rate = rate + (1 - exp(-dt / tau)) * (instant - rate)
        } else {
            self.rate = instant
        }
        pending = 0
        lastSample = now
    }

    /// Seconds since the last byte, once bytes have arrived.
    func stalledSeconds(now: Date = Date()) -> Double? { lastByte.map { now.timeIntervalSince($0) } }
}
