import Foundation

/// Latency by percentile as an SVG, drawn the way HdrHistogram's plotter draws it: the
/// percentile axis is log-scaled in 1/(1-p), so 90%, 99%, 99.9%, … are evenly spaced and the tail
/// gets the room it deserves. One path per run, with axes, tick labels, axis titles and a legend.
public enum BenchPlot {
    public struct Series: Sendable {
        public var label: String
        public var points: [BenchReport.CurvePoint]

        public init(label: String, points: [BenchReport.CurvePoint]) {
            self.label = label
            self.points = points
        }
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public static func svg(_ series: [Series], title: String = "Latency by percentile") -> String {
        let width = 960.0
        let height = 560.0
        let left = 90.0
        let right = 60.0
        let top = 56.0
        let bottom = 78.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom

        // Percentile axis: decades of 1/(1-p), at least to 99.9%, at most to 99.99999%.
        let finite = series.flatMap(\.points).filter { $0.percentile < 100 }.map { decades($0.percentile) }
        let decadeCount = Int(min(7, max(3, (finite.max() ?? 3).rounded(.up))))
        let maxLatency = series.flatMap(\.points).map(\.latencyMicroseconds).max() ?? 1
        let useMilliseconds = maxLatency >= 10_000
        let unit = useMilliseconds ? 1000.0 : 1.0
        let (yMax, yStep) = niceScale(max(maxLatency / unit, 0.001) * 1.05)

        func x(_ percentile: Double) -> Double {
            let d = percentile >= 100 ? Double(decadeCount) : min(decades(percentile), Double(decadeCount))
            return left + plotWidth * d / Double(decadeCount)
        }
        func y(_ latency: Double) -> Double { top + plotHeight * (1 - min(latency / unit, yMax) / yMax) }

        var svg = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" \
            viewBox="0 0 \(f(width)) \(f(height))" font-family="Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(f(width))" height="\(f(height))" fill="white"/>
            <text x="\(f(width / 2))" y="30" text-anchor="middle" font-size="18" font-weight="bold">\(escape(title))</text>

            """
        // Grid and tick labels.
        svg += "<g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n"
        for decade in 0...decadeCount {
            let px = left + plotWidth * Double(decade) / Double(decadeCount)
            svg += "<line x1=\"\(f(px))\" y1=\"\(f(top))\" x2=\"\(f(px))\" y2=\"\(f(top + plotHeight))\"/>\n"
        }
        var tick = 0.0
        while tick <= yMax + yStep / 2 {
            let py = top + plotHeight * (1 - tick / yMax)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py))\"/>\n"
            tick += yStep
        }
        svg += "</g>\n<g class=\"ticks\" font-size=\"13\" fill=\"#333333\">\n"
        for decade in 0...decadeCount {
            let px = left + plotWidth * Double(decade) / Double(decadeCount)
            svg +=
                "<text x=\"\(f(px))\" y=\"\(f(top + plotHeight + 20))\" text-anchor=\"middle\">\(percentLabel(decade))</text>\n"
        }
        tick = 0
        while tick <= yMax + yStep / 2 {
            let py = top + plotHeight * (1 - tick / yMax)
            svg +=
                "<text x=\"\(f(left - 8))\" y=\"\(f(py + 4))\" text-anchor=\"end\">\(numberLabel(tick, step: yStep))</text>\n"
            tick += yStep
        }
        svg += "</g>\n"
        // Axes and their titles.
        svg += """
            <g class="axes" stroke="#333333" stroke-width="1.5">
            <line x1="\(f(left))" y1="\(f(top + plotHeight))" x2="\(f(left + plotWidth))" y2="\(f(top + plotHeight))"/>
            <line x1="\(f(left))" y1="\(f(top))" x2="\(f(left))" y2="\(f(top + plotHeight))"/>
            </g>
            <text x="\(f(left + plotWidth / 2))" y="\(f(height - 22))" text-anchor="middle" font-size="15">Percentile</text>
            <text x="24" y="\(f(top + plotHeight / 2))" text-anchor="middle" font-size="15" \
            transform="rotate(-90 24 \(f(top + plotHeight / 2)))">Latency (\(useMilliseconds ? "ms" : "µs"))</text>

            """
        // One path per run.
        for (index, run) in series.enumerated() {
            let color = colors[index % colors.count]
            var d = ""
            for (i, point) in run.points.enumerated() {
                d += (i == 0 ? "M" : " L") + "\(f(x(point.percentile))) \(f(y(point.latencyMicroseconds)))"
            }
            if d.isEmpty { d = "M\(f(left)) \(f(top + plotHeight))" }
            svg +=
                "<path class=\"run\" data-label=\"\(escape(run.label))\" d=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n"
        }
        // Legend, top left inside the plot where latency curves start low.
        let legendHeight = 12.0 + 22.0 * Double(series.count)
        let legendWidth = min(plotWidth - 20, 16.0 + 8.0 * Double(series.map(\.label.count).max() ?? 10) + 40)
        svg += "<g class=\"legend\" font-size=\"13\">\n"
        svg +=
            "<rect x=\"\(f(left + 12))\" y=\"\(f(top + 12))\" width=\"\(f(legendWidth))\" height=\"\(f(legendHeight))\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#999999\"/>\n"
        for (index, run) in series.enumerated() {
            let color = colors[index % colors.count]
            let ly = top + 12 + 20 + 22.0 * Double(index)
            svg +=
                "<line x1=\"\(f(left + 22))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + 46))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
            svg += "<text x=\"\(f(left + 54))\" y=\"\(f(ly))\">\(escape(run.label))</text>\n"
        }
        svg += "</g>\n</svg>\n"
        return svg
    }

    /// log10(1 / (1 - p)): 0 at 0%, 1 at 90%, 2 at 99%, …
    static func decades(_ percentile: Double) -> Double {
        let remaining = max(1 - percentile / 100, 1e-12)
        return log10(1 / remaining)
    }

    static func percentLabel(_ decade: Int) -> String {
        switch decade {
        case 0: return "0%"
        case 1: return "90%"
        case 2: return "99%"
        default: return "99." + String(repeating: "9", count: decade - 2) + "%"
        }
    }

    /// A round axis maximum and step (1, 2 or 5 × 10^k) with about five steps.
    static func niceScale(_ maximum: Double) -> (Double, Double) {
        let rough = maximum / 5
        let magnitude = pow(10, floor(log10(rough)))
        let step = [1.0, 2.0, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        return ((maximum / step).rounded(.up) * step, step)
    }

    static func numberLabel(_ value: Double, step: Double) -> String {
        if step >= 1 { return String(Int(value.rounded())) }
        let digits = Int(max(0, -floor(log10(step))))
        return String(format: "%.\(digits)f", value)
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }
}
