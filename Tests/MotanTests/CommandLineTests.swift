import Foundation
import MotanTestSupport
import Testing

@Suite("motan demo")
struct DemoCommandTests {
    @Test("the narrative runs to completion: preview, switch on, fault drill, graceful shutdown")
    func demoRuns() async throws {
        let (status, output) = try await MotanChild.run(["demo", "--calls", "200", "--probe-milliseconds", "100"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("in the registry as: unavailable"))
        #expect(output.contains("hello(\"anyone?\") → error: no provider"))
        #expect(output.contains("hello(\"preview\") → \"hello preview\""))
        #expect(output.contains("hello(\"swift-motan\") → \"hello swift-motan\""))
        #expect(output.contains("unavailable (no connection available"))
        #expect(output.contains("available (heartbeat answered"))
        #expect(output.contains("hello(\"again\") → \"hello again\""))
        #expect(output.contains("20 of 20 calls in flight were answered"))
    }
}
