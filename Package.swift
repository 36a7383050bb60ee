// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-motan",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MotanLoop", targets: ["MotanLoop"]),
        .library(name: "MotanCodec", targets: ["MotanCodec"]),
        .library(name: "MotanTransport", targets: ["MotanTransport"]),
        .library(name: "MotanRegistry", targets: ["MotanRegistry"]),
        .library(name: "Motan", targets: ["Motan"]),
        .library(name: "MotanZooKeeper", targets: ["MotanZooKeeper"]),
        .library(name: "MotanHarness", targets: ["MotanHarness"]),
        .library(name: "MotanHTTP", targets: ["MotanHTTP"]),
        .library(name: "MotanConsul", targets: ["MotanConsul"]),
        .executable(name: "motan", targets: ["motan"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // Test-only: proves an application can import SwiftNIO beside the transport.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            path: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "MotanLoop",
            dependencies: [
                "CLibUV",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MotanCodec",
            dependencies: ["CZlib"]
        ),
        .target(
            name: "MotanTransport",
            dependencies: [
                "MotanLoop",
                "MotanCodec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "MotanRegistry",
            dependencies: [
                "MotanLoop",
                "MotanTransport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MotanHTTP",
            dependencies: [
                "MotanLoop",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MotanConsul",
            dependencies: [
                "MotanHTTP",
                "MotanRegistry",
                "MotanLoop",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "MotanZooKeeper",
            dependencies: [
                "MotanLoop",
                "MotanRegistry",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Motan",
            dependencies: [
                "MotanRegistry",
                "MotanTransport",
                "MotanHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "MotanHarness",
            dependencies: [
                "MotanLoop",
                "MotanTransport",
                "MotanCodec",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "motan",
            dependencies: [
                "MotanLoop",
                "MotanCodec",
                "MotanTransport",
                "MotanHarness",
                "MotanRegistry",
                "MotanHTTP",
                "Motan",
                "MotanConsul",
                "MotanZooKeeper",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MotanLoopTests",
            dependencies: ["MotanLoop", "CLibUV"]
        ),
        .testTarget(
            name: "MotanTransportTests",
            dependencies: ["MotanTransport", "MotanLoop", "MotanCodec", "MotanHarness", "MotanTestSupport"]
        ),
        .testTarget(
            name: "MotanRegistryTests",
            dependencies: [
                "MotanRegistry", "MotanTransport", "MotanTestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MotanTests",
            dependencies: [
                "Motan",
                "MotanTestSupport",
                "MotanHTTP",
                "MotanRegistry",
                "MotanTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "MotanHTTPTests",
            dependencies: ["MotanHTTP", "MotanLoop"]
        ),
        // Drives the `motan` CLI as a child process in tests of several layers.
        .target(
            name: "MotanTestSupport",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/MotanTestSupport"
        ),
        // The Consul-agent stand-in: a test fixture, shared by the Consul tests and the flip-latency tool.
        .target(
            name: "ConsulAgentStandIn",
            dependencies: ["MotanHTTP", "MotanLoop"],
            path: "Tests/ConsulAgentStandIn"
        ),
        .testTarget(
            name: "MotanConsulTests",
            dependencies: [
                "MotanConsul", "ConsulAgentStandIn", "MotanHTTP", "MotanRegistry", "MotanLoop", "MotanTestSupport",
            ]
        ),
        .executableTarget(
            name: "ConsulFlipLatency",
            dependencies: ["MotanConsul", "ConsulAgentStandIn", "MotanRegistry", "MotanLoop", "MotanTestSupport"],
            path: "Tests/ConsulFlipLatency"
        ),
        .testTarget(
            name: "MotanZooKeeperTests",
            dependencies: ["MotanZooKeeper", "MotanRegistry", "MotanLoop", "MotanTestSupport"]
        ),
        .testTarget(
            name: "MotanHarnessTests",
            dependencies: ["MotanHarness", "MotanLoop", "MotanCodec"]
        ),
        // Flip-to-notification latency through a real ZooKeeper (prints numbers, asserts nothing).
        .executableTarget(
            name: "ZooKeeperFlipLatency",
            dependencies: ["MotanZooKeeper", "MotanRegistry", "MotanLoop", "MotanTestSupport"],
            path: "Tests/ZooKeeperFlipLatency"
        ),
        .testTarget(
            name: "MotanCoexistenceTests",
            dependencies: ["MotanTransport", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "MotanCodecTests",
            dependencies: [
                "MotanCodec",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
    ]
)
