import Metrics

/// swift-metrics instruments of one client endpoint, labelled with its address.
struct EndpointMetrics {
    let heartbeatsSent: Counter
    let heartbeatsAnswered: Counter
    let heartbeatsFailed: Counter
    let becameUnavailable: Counter
    let becameAvailable: Counter
    let available: Gauge
    let callFailures: Counter

    init(endpoint: String) {
        let dimensions = [("endpoint", endpoint)]
        heartbeatsSent = Counter(label: "motan_client_heartbeats_sent", dimensions: dimensions)
        heartbeatsAnswered = Counter(label: "motan_client_heartbeats_answered", dimensions: dimensions)
        heartbeatsFailed = Counter(label: "motan_client_heartbeats_failed", dimensions: dimensions)
        becameUnavailable = Counter(
            label: "motan_client_endpoint_unavailable_total", dimensions: dimensions)
        becameAvailable = Counter(label: "motan_client_endpoint_available_total", dimensions: dimensions)
        available = Gauge(label: "motan_client_endpoint_available", dimensions: dimensions)
        callFailures = Counter(label: "motan_client_call_failures", dimensions: dimensions)
    }
}
