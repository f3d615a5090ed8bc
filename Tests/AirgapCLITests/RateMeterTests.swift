@testable import AirgapCLI
import Foundation
import Testing

/// The smoothed rate behind the ETA: it follows the bytes, and falls while none arrive, so an ETA
/// computed from it keeps moving instead of freezing at its last value.
struct RateMeterTests {
    @Test func theRateFollowsTheBytesAndFallsWhileNoneArrive() {
        var meter = RateMeter()
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        #expect(meter.rate == nil)
        meter.add(10_000_000, now: t0)
        meter.sample(now: t0.addingTimeInterval(1))
        #expect(meter.rate == 10_000_000)
        // Steady 10 MB/s: stays there.
        for i in 2...5 {
            meter.add(10_000_000, now: t0.addingTimeInterval(Double(i) - 0.5))
            meter.sample(now: t0.addingTimeInterval(Double(i)))
        }
        #expect(abs(meter.rate! - 10_000_000) < 1)
        // Nothing for 6 s: the rate decays (time constant 3 s) and the stall is counted.
        var previous = meter.rate!
        for i in 6...11 {
            meter.sample(now: t0.addingTimeInterval(Double(i)))
            #expect(meter.rate! < previous)
            previous = meter.rate!
        }
        #expect(previous < 10_000_000 * 0.2)
        #expect(meter.stalledSeconds(now: t0.addingTimeInterval(11))! > 6)
        // A burst does not jump the rate all the way at once.
        meter.add(100_000_000, now: t0.addingTimeInterval(11.5))
        meter.sample(now: t0.addingTimeInterval(12))
        #expect(meter.rate! > previous && meter.rate! < 100_000_000)
    }

    @Test func durationsAndBarsReadAsDockerUsersExpect() {
        #expect(ProgressRenderer.duration(42) == "42s")
        #expect(ProgressRenderer.duration(187) == "3m07s")
        #expect(ProgressRenderer.duration(3900) == "1h05m")
        #expect(ProgressRenderer.bar(0, of: 100, width: 10) == "[          ]")
        #expect(ProgressRenderer.bar(50, of: 100, width: 10) == "[====>     ]")
        #expect(ProgressRenderer.bar(100, of: 100, width: 10) == "[==========]")
        #expect(ProgressRenderer.bar(200, of: 100, width: 10) == "[==========]")
    }
}
