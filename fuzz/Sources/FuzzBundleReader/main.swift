import AirgapBundle
import Foundation

// The bundle reader on whatever bytes arrive on a USB drive. Unsigned reads are allowed so the
// fuzzer gets past the signature into the tar and JSON parsing; the reader must answer with
// findings, never crash, and never call a bundle good that holds no index.
// (libFuzzer owns main, so this file's top-level code never runs: state lives in a static.)
enum Scratch { static let path = "/dev/shm/airgap-fuzz-bundle-\(getpid()).tar" }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBundleReader(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard FileManager.default.createFile(atPath: Scratch.path, contents: Data(bytes: start, count: count)) else {
        fatalError("cannot write \(Scratch.path)")
    }
    defer { unlink(Scratch.path) }
    // The reader is async (its handlers may wait on a sink); libFuzzer's callback is not, so the
    // read runs as a task started on this thread, and this thread waits for it.
    let done = DispatchSemaphore(value: 0)
    Task.immediate { // runs here until it would wait, which a read with no handlers never does
        defer { done.signal() }
        do {
            let files = try BundleFiles.resolve([Scratch.path])
            let result = try await BundleReader(files: files, publicKey: nil, allowUnsigned: true).read()
            if result.ok { precondition(result.index != nil && result.checksums != nil, "a bundle without index or SHA256SUMS was read as good") }
        } catch {
            // Thrown errors are I/O failures of the file itself, reported by the caller.
        }
    }
    done.wait()
    return 0
}
