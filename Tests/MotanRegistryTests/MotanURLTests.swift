import MotanTestSupport
import Testing

@testable import MotanRegistry

@Suite("MotanURL")
struct MotanURLTests {
    static let goNode =
        "motan2://127.0.0.1:18101/com.weibo.motan.demo.service.MotanDemoService?group=motan-demo-rpc&application=server-test&basicService=mybasicService&conf-id=mytest-demo&export=motan2:18101&filter=accessLog&nodeType=service&ref=main.MotanDemoService&registry=zk-registry&serialization=simple"

    @Test func javaFormWithTrailingAmpersand() throws {
        let url = try #require(MotanURL(parsing: "motan://1.2.3.4:8001/a.B?group=g&"))
        #expect(url.protocol == "motan")
        #expect(url.host == "1.2.3.4")
        #expect(url.port == 8001)
        #expect(url.path == "a.B")
        #expect(url.parameters == ["group": "g"])
        #expect(url.group == "g")
        #expect(url.description == "motan://1.2.3.4:8001/a.B?group=g")
    }

    @Test func javaFormIsDecodedAndBareKeysMapToThemselves() throws {
        let text =
            "motan://10.0.0.1:8002/com.x.Y?nodeType=service&export=motan%3A8002&desc=hello+world&zh=%E4%B8%AD&check&group=g&"
        let url = try #require(MotanURL(parsing: text))
        #expect(url[parameter: "export"] == "motan:8002")
        #expect(url[parameter: "desc"] == "hello world")
        #expect(url[parameter: "zh"] == "中")
        #expect(url[parameter: "check"] == "check")
        #expect(url.group == "g")
        #expect(url.parameters.count == 6)
    }

    @Test func javaColonSlashFormIsAccepted() throws {
        let url = try #require(MotanURL(parsing: "motan:/1.2.3.4:8001/a.B?group=g"))
        #expect(url.host == "1.2.3.4" && url.port == 8001 && url.path == "a.B")
    }

    @Test func goFormFromALiveNodeReadsAndWritesBackByteForByte() throws {
        let url = try #require(MotanURL(parsing: Self.goNode))
        #expect(url.protocol == "motan2")
        #expect(url.hostPort == "127.0.0.1:18101")
        #expect(url.path == "com.weibo.motan.demo.service.MotanDemoService")
        #expect(url.group == "motan-demo-rpc")
        #expect(url.nodeType == "service")
        #expect(url[parameter: "export"] == "motan2:18101")
        #expect(url[parameter: "conf-id"] == "mytest-demo")
        #expect(url.parameters.count == 10)
        #expect(url.description == Self.goNode)
    }

    @Test func identityStrings() throws {
        let url = try #require(MotanURL(parsing: Self.goNode))
        let service = "com.weibo.motan.demo.service.MotanDemoService"
        #expect(url.serviceKey == "motan-demo-rpc/\(service)/1.0")
        #expect(url.protocolKey == "motan2://127.0.0.1:18101/motan-demo-rpc/\(service)/1.0")
        #expect(url.identity == "motan2://127.0.0.1:18101/motan-demo-rpc/\(service)/1.0/service")
        var versioned = url
        versioned[parameter: "version"] = "2.0"
        #expect(versioned.serviceKey == "motan-demo-rpc/\(service)/2.0")
        let defaults = MotanURL(host: "h", port: 1, path: "p")
        #expect(defaults.serviceKey == "default_rpc/p/1.0")
    }

    @Test(arguments: [(8001, "1.2.3.4:8001"), (0, "1.2.3.4"), (-1, "1.2.3.4"), (1, "1.2.3.4:1")])
    func hostPortDropsANonPositivePort(port: Int, expected: String) {
        #expect(MotanURL(host: "1.2.3.4", port: port, path: "a").hostPort == expected)
    }

    @Test func portlessURLRoundTrips() throws {
        let url = MotanURL(protocol: "motan", host: "10.1.1.1", port: 0, path: "a.B", parameters: ["group": "g"])
        #expect(url.description == "motan://10.1.1.1/a.B?group=g")
        #expect(MotanURL(parsing: url.description) == url)
    }

    static let awkwardValues = [
        "a&b", "k=v", "100%", "what?", "1+1", "#frag", "two words", "tab\there", "中文", "mixed=&%+? 中",
        "%41", "trailing%", "", "plain-value_1.0", "motan2:8001,motan:8002",
    ]

    @Test(arguments: awkwardValues)
    func valuesRoundTripThroughTheWrittenForm(value: String) throws {
        let url = MotanURL(
            host: "127.0.0.1", port: 9000, path: "x.Y",
            parameters: ["group": "g", "v": value, "key \(value)": "1"])
        let parsed = try #require(MotanURL(parsing: url.description))
        #expect(parsed == url, "written as \(url.description)")
    }

    @Test func safeValuesAreWrittenUnencodedForGoReaders() {
        let url = MotanURL(
            host: "127.0.0.1", port: 9000, path: "x.Y", parameters: ["group": "g", "export": "motan2:9000,a/b"])
        #expect(url.description == "motan2://127.0.0.1:9000/x.Y?group=g&export=motan2:9000,a/b")
    }

    @Test func javaEncodedValuesDecodeToTheOriginal() throws {
        for value in Self.awkwardValues {
            let text = "motan://h:1/p?v=\(MotanURL.percentEncoded(value))&"
            let parsed = try #require(MotanURL(parsing: text))
            #expect(parsed[parameter: "v"] == (value.isEmpty ? "" : value), "from \(text)")
        }
    }

    @Test func malformedEscapesStayAsWritten() throws {
        let url = try #require(MotanURL(parsing: "motan://h:1/p?a=%+1&b=%4&c=%zz&d=%-1"))
        #expect(url[parameter: "a"] == "% 1")
        #expect(url[parameter: "b"] == "%4")
        #expect(url[parameter: "c"] == "%zz")
        #expect(url[parameter: "d"] == "%-1")
    }

    @Test func ipv6HostsAreBracketedAndRoundTrip() throws {
        let url = MotanURL(host: "::1", port: 8002, path: "a.B", parameters: ["group": "g"])
        #expect(url.description == "motan2://[::1]:8002/a.B?group=g")
        #expect(MotanURL(parsing: url.description) == url)
    }

    @Test(arguments: ["", "no-scheme", "://host:1/p", "motan://host:notaport/p"])
    func unusableTextIsRejected(text: String) {
        #expect(MotanURL(parsing: text) == nil)
    }
}
