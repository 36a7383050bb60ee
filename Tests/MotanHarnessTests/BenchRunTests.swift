import Foundation
import MotanCodec
import MotanHarness
import MotanLoop
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Short, bounded runs against the embedded server (each ≤ 2.5 s of load). They check what a run
/// reports, never how fast it went.
@Suite("motan bench runs", .serialized)
struct BenchRunTests {
    private func embedded(_ edit: (inout BenchOptions) -> Void) throws -> BenchConfiguration {
        var options = BenchOptions()
        options.embedded = true
        options.connections = 4
        options.depth = 4
        options.duration = "1"
        options.warmup = "200ms"
        edit(&options)
        return try BenchConfiguration.parse(options)
    }

    private func assertEveryRequestHasOneOutcome(_ report: BenchReport) {
        #expect(report.requests > 0)
        #expect(report.requests == report.succeeded + report.errors.total, "requests must equal the sum of outcomes")
    }

    @Test func unreachableTargetFailsBeforeLoading() async throws {
        // A port that was just free: nothing listens there.
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "probe")
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in nil }
        let port = server.port
        await server.close()
        await group.shutdown()

        var options = BenchOptions()
        options.targets = ["127.0.0.1:\(port)"]
        options.connections = 2
        options.duration = "1"
        let configuration = try BenchConfiguration.parse(options)
        do {
            _ = try await BenchRunner(configuration: configuration).run()
            Issue.record("a run against a closed port must fail")
        } catch {
            guard case .unreachable(let target, let reason) = error else {
                Issue.record("expected unreachable, got \(error)")
                return
            }
            #expect(target == "127.0.0.1:\(port)")
            #expect(reason.contains("ECONNREFUSED") || reason.contains("refused"), "\(reason)")
        }
    }

    @Test func embeddedRunAccountsForEveryRequestAndWritesReadableFiles() async throws {
        let result = try await BenchRunner(configuration: try embedded { _ in }, label: "embedded <4x4>").run()
        let report = result.report
        assertEveryRequestHasOneOutcome(report)
        #expect(report.errors.total == 0)
        #expect(report.succeeded == Int(result.histogram.totalCount))
        #expect(report.latencyMicroseconds.p50 > 0)
        #expect(report.latencyMicroseconds.p50 <= report.latencyMicroseconds.p99)
        #expect(report.latencyMicroseconds.p99 <= report.latencyMicroseconds.max)
        #expect(report.events.isEmpty)

        // JSON: parsed back generically (the keys other tools read) and as a report.
        let data = try report.jsonData()
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["requests", "succeeded", "errors", "requestsPerSecond", "latencyMicroseconds"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["requests"] as? Int == report.requests)
        let errors = try #require(object["errors"] as? [String: Any])
        #expect(Set(errors.keys) == ["timeout", "unavailable", "serverError", "connection"])
        let latency = try #require(object["latencyMicroseconds"] as? [String: Any])
        for key in ["p50", "p90", "p99", "p999", "p9999", "max"] {
            #expect(latency[key] is Double || latency[key] is Int, "missing latency \(key)")
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(getpid()).json").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try BenchReport.load(path: path)
        #expect(loaded.requests == report.requests)
        #expect(loaded.percentileCurve == report.percentileCurve)

        // SVG: well-formed XML with one path per run, labels escaped.
        let other = BenchPlot.Series(
            label: "shifted",
            points: report.percentileCurve.map {
                .init(percentile: $0.percentile, latencyMicroseconds: $0.latencyMicroseconds * 2)
            })
        let svg = BenchPlot.svg([.init(label: report.label, points: report.percentileCurve), other])
        let shape = try SVGShape(svg)
        #expect(shape.runPaths == 2)
        #expect(shape.texts.contains("embedded <4x4>"))
        #expect(shape.texts.contains("Percentile"))
        #expect(shape.texts.contains("99%"))

        // HdrHistogram's percentile distribution text.
        let hdr = BenchReport.hdrPercentileDistribution(result.histogram)
        #expect(hdr.contains("Value"))
        #expect(hdr.contains("Total count"))
    }

    @Test func constantRateSendsAtTheRequestedRate() async throws {
        let rate = 1500.0
        let configuration = try embedded {
            $0.depth = nil
            $0.rate = String(rate)
            $0.duration = "2"
            $0.warmup = "0"
        }
        let report = try await BenchRunner(configuration: configuration).run().report
        assertEveryRequestHasOneOutcome(report)
        let intended = try #require(report.intendedRequests)
        // The schedule itself: rate × window.
        #expect(abs(Double(intended) - rate * 2) <= rate * 2 * 0.05, "intended \(intended)")
        // What was actually sent keeps to the schedule.
        #expect(
            abs(Double(report.requests - intended)) <= Double(intended) * 0.05, "sent \(report.requests) of \(intended)"
        )
        #expect(report.mode == "constant-rate")
    }

    @Test func killDrillReportsDetectionAndRecovery() async throws {
        let configuration = try embedded {
            $0.duration = "2"
            $0.warmup = "0"
            $0.timeout = "300ms"
            $0.killAfter = "400ms"
            $0.healAfter = "500ms"
        }
        let report = try await BenchRunner(configuration: configuration).run().report
        assertEveryRequestHasOneOutcome(report)
        let kinds = report.events.map(\.kind)
        #expect(kinds.contains(.serverKilled))
        #expect(kinds.contains(.unavailable), "\(report.events)")
        #expect(kinds.contains(.serverRestarted))
        #expect(kinds.contains(.available), "\(report.events)")
        let fault = try #require(report.fault)
        #expect(fault.detectionMilliseconds != nil)
        #expect(fault.recoveryMilliseconds != nil)
        #expect(report.errors.total > 0)
        #expect(report.succeeded > 0)
    }

    @Test func pauseDrillReportsDetectionAndRecovery() async throws {
        let configuration = try embedded {
            $0.duration = "2"
            $0.warmup = "0"
            $0.timeout = "200ms"
            $0.pauseAfter = "300ms"
            $0.healAfter = "800ms"
        }
        let report = try await BenchRunner(configuration: configuration).run().report
        assertEveryRequestHasOneOutcome(report)
        let kinds = report.events.map(\.kind)
        #expect(kinds.contains(.serverPaused))
        #expect(kinds.contains(.unavailable), "\(report.events)")
        #expect(kinds.contains(.serverResumed))
        #expect(kinds.contains(.available), "\(report.events)")
        #expect(report.errors.timeout > 0)
        #expect(report.fault?.recoveryMilliseconds != nil)
    }
}

extension BenchRunTests {
    /// Against a server that answers in 11-byte pieces a millisecond apart (so frames always
    /// straddle reads, headers included) and fails every other request, every answer is still
    /// matched to its request and counted once.
    @Test func responsesSplitAcrossReadsAndServerErrorsAreCounted() async throws {
        let group = UVEventLoopGroup(numberOfLoops: 1, namePrefix: "choppy")
        let server = try TCPServer.bind(host: "127.0.0.1", port: 0, on: group) { _ in ChoppyMotanServer() }
        defer {
            server.close()
            group.syncShutdown()
        }
        var options = BenchOptions()
        options.targets = [server.address.description]
        options.connections = 2
        options.depth = 3
        options.duration = "600ms"
        options.warmup = "0"
        let report = try await BenchRunner(configuration: try BenchConfiguration.parse(options)).run().report
        assertEveryRequestHasOneOutcome(report)
        #expect(report.succeeded > 0)
        #expect(report.errors.serverError > 0)
        #expect(report.errors.connection == 0, "a split frame was misread")
        #expect(report.errors.timeout == 0)
        #expect(report.events.isEmpty, "server errors are answers: the target stays available")
    }
}

/// Echoes Motan2 requests, failing every second one, and dribbles its output out 11 bytes per
/// millisecond.
final class ChoppyMotanServer: TCPConnectionDelegate, @unchecked Sendable {
    private var decoder = FrameDecoder()
    private var output: [UInt8] = []
    private var answered = 0
    private var dripping = false

    func connectionDidRead(_ connection: TCPConnection, _ bytes: UnsafeRawBufferPointer) {
        decoder.feed(bytes)
        while let frame = try? decoder.next() {
            answered += 1
            if frame.isHeartbeat {
                FrameEncoder.encodeHeartbeatResponse(requestID: frame.requestID, into: &output)
            } else if answered % 2 == 0 {
                FrameEncoder.encodeErrorResponse(
                    requestID: frame.requestID, error: MotanErrorInfo(errcode: 503, errmsg: "even", errtype: 1),
                    into: &output)
            } else {
                FrameEncoder.encodeResponse(requestID: frame.requestID, processTime: 0, body: frame.body, into: &output)
            }
        }
        if !dripping { drip(connection) }
    }

    private func drip(_ connection: TCPConnection) {
        guard connection.state == .open, !output.isEmpty else {
            dripping = false
            return
        }
        dripping = true
        let piece = Array(output.prefix(11))
        output.removeFirst(piece.count)
        connection.writeAndFlush(piece)
        connection.loop.scheduleTimer(after: .milliseconds(1)) { [self] in drip(connection) }
    }

    func connectionDidClose(_ connection: TCPConnection, reason: CloseReason) {}
}

/// What an SVG document holds, read with a real XML parser.
final class SVGShape: NSObject, XMLParserDelegate {
    var runPaths = 0
    var texts: [String] = []
    private var text = ""
    private var inText = false
    private var rootIsSVG = false

    init(_ svg: String) throws {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        guard parser.parse(), rootIsSVG else {
            throw SVGError(reason: parser.parserError.map { "\($0)" } ?? "root is not <svg>")
        }
    }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        if elementName == "svg" { rootIsSVG = true }
        if elementName == "path", attributes["class"] == "run", attributes["d"]?.hasPrefix("M") == true {
            runPaths += 1
        }
        if elementName == "text" {
            inText = true
            text = ""
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if inText { text += string }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        if elementName == "text" {
            inText = false
            texts.append(text)
        }
    }

    struct SVGError: Error { var reason: String }
}
