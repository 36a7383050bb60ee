import Foundation
import Logging
import MotanLoop
import MotanTestSupport
import Testing

@testable import MotanRegistry

@Suite("Switcher")
struct SwitcherTests {
    @Test func heartbeatSwitchStartsOffAndMissingSwitchesAreOff() {
        let switcher = Switcher()
        #expect(Switcher.heartbeatSwitchName == "feature.configserver.heartbeat")
        #expect(switcher.contains(Switcher.heartbeatSwitchName))
        #expect(!switcher.isOnline)
        #expect(!switcher.isOn("no.such.switch"))
        #expect(!switcher.contains("no.such.switch"))
    }

    @Test func defineCreatesOnlyWhenAbsentAndNeverResets() {
        let switcher = Switcher()
        switcher.setOnline(true)
        #expect(switcher.define(Switcher.heartbeatSwitchName, default: false))
        #expect(switcher.isOnline)
        #expect(switcher.define("feature.x", default: true))
        #expect(switcher.isOn("feature.x"))
        #expect(!switcher.define("feature.y", default: false))
        #expect(switcher.all == [Switcher.heartbeatSwitchName: true, "feature.x": true, "feature.y": false])
    }

    @Test func listenersHearChangesOnlyAndEveryChangeIsLoggedWithItsSource() {
        let capture = LogCapture()
        let switcher = Switcher(logger: capture.logger())
        let heard = Box<[SwitchChange]>([])
        switcher.addListener(for: Switcher.heartbeatSwitchName) { change in heard.mutate { $0.append(change) } }
        switcher.addListener(for: "other") { _ in Issue.record("a listener of another switch was called") }

        #expect(switcher.setOnline(true, source: .adminEndpoint))
        #expect(!switcher.setOnline(true))
        #expect(switcher.setOnline(false, source: .commandLine))
        #expect(
            heard.value == [
                SwitchChange(name: Switcher.heartbeatSwitchName, value: true, source: .adminEndpoint),
                SwitchChange(name: Switcher.heartbeatSwitchName, value: false, source: .commandLine),
            ])
        #expect(
            capture.messages(at: .info) == [
                "switch feature.configserver.heartbeat turned on by admin endpoint",
                "switch feature.configserver.heartbeat turned off by command line",
            ])
        #expect(capture.messages(at: .debug).contains { $0.contains("already on") })
    }

    @Test func listenerWithoutALoopRunsOnTheSettersThread() {
        let switcher = Switcher()
        let thread = Box<String?>(nil)
        switcher.addListener(for: nil) { _ in thread.mutate { $0 = "\(pthread_self())" } }
        switcher.set("feature.a", true)
        #expect(thread.value == "\(pthread_self())")
    }

    @Test func listenerWithALoopRunsOnThatLoopLater() async {
        let loop = UVEventLoop(name: "switch-listener")
        defer { loop.syncShutdown() }
        let switcher = Switcher()
        let onLoop = Box<[Bool]>([])
        switcher.addListener(for: "feature.a", on: loop) { change in
            onLoop.mutate { $0.append(loop.inEventLoop && change.value) }
        }
        switcher.set("feature.a", true)
        #expect(await eventually { onLoop.value == [true] })
    }

    @Test func aListenerOnAShutDownLoopIsSkippedAndTheOthersStillHear() {
        let loop = UVEventLoop(name: "switch-listener")
        loop.syncShutdown()
        let switcher = Switcher()
        let heard = Box(0)
        switcher.addListener(for: nil, on: loop) { _ in heard.mutate { $0 += 100 } }
        switcher.addListener(for: nil) { _ in heard.mutate { $0 += 1 } }
        switcher.set("a", true)
        switcher.set("a", false)
        #expect(heard.value == 2)
    }

    @Test func aListenerSettingASwitchIsNotReentered() {
        let switcher = Switcher()
        let order = Box<[String]>([])
        let depth = Box(0)
        switcher.addListener(for: nil) { change in
            let level = depth.mutate {
                $0 += 1
                return $0
            }
            defer { depth.mutate { $0 -= 1 } }
            order.mutate { $0.append("\(change.name)=\(change.value)@\(level)") }
            if change.name == "a" { switcher.set("b", true) }
        }
        switcher.set("a", true)
        #expect(order.value == ["a=true@1", "b=true@1"])
    }

    @Test func concurrentSettersLeaveListenersWithTheFinalValue() async {
        var quiet = Logger(label: "test")
        quiet.logLevel = .warning
        let switcher = Switcher(logger: quiet)
        let last = Box<Bool?>(nil)
        let count = Box(0)
        switcher.addListener(for: "flip") { change in
            last.mutate { $0 = change.value }
            count.mutate { $0 += 1 }
        }
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for round in 0..<500 { switcher.set("flip", (task + round) % 2 == 0) }
                }
            }
        }
        #expect(last.value == switcher.isOn("flip"))
        #expect(count.value > 0)
    }

    @Test func changesArriveAsAStream() async {
        let switcher = Switcher()
        let stream = switcher.changes(of: Switcher.heartbeatSwitchName)
        switcher.set("unrelated", true)
        switcher.setOnline(true)
        switcher.setOnline(false)
        var values: [Bool] = []
        for await change in stream {
            values.append(change.value)
            if values.count == 2 { break }
        }
        #expect(values == [true, false])
    }

    @Test func removedListenersHearNothing() {
        let switcher = Switcher()
        let heard = Box(0)
        let token = switcher.addListener(for: nil) { _ in heard.mutate { $0 += 1 } }
        switcher.set("a", true)
        switcher.removeListener(token)
        switcher.set("a", false)
        #expect(heard.value == 1)
    }

    @Test func sharedInstanceIsOneSwitcher() {
        #expect(Switcher.shared === Switcher.shared)
        #expect(Switcher.shared.contains(Switcher.heartbeatSwitchName))
    }
}
