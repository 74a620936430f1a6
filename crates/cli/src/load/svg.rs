//! Line charts as SVG, stacked one above the other: what a person looks at to see how a
//! run went over time. Hand-drawn (a few dozen lines) rather than a plotting crate, whose
//! text layout wants a font stack the load tester has no other use for.

use std::fmt::Write;

/// One line: its name (in the legend), colour and points (x seconds, y).
pub(crate) struct Line {
    pub(crate) name: String,
    pub(crate) colour: &'static str,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One chart: a title, the y axis' unit, and its lines.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) unit: &'static str,
    pub(crate) lines: Vec<Line>,
}

pub(crate) const COLOURS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;

/// The charts, stacked, as one SVG document.
pub(crate) fn render(charts: &[Chart]) -> String {
    let mut out = String::new();
    let total = HEIGHT * charts.len() as f64;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (index, chart) in charts.iter().enumerate() {
        draw(&mut out, chart, HEIGHT * index as f64);
    }
    out.push_str("</svg>\n");
    out
}

fn draw(out: &mut String, chart: &Chart, top: f64) {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let points = chart.lines.iter().flat_map(|line| line.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = nice_ceiling(points.map(|p| p.1).fold(0.0_f64, f64::max));
    let x = |value: f64| LEFT + value / x_max * plot_width;
    let y = |value: f64| top + TOP + plot_height - value / y_max * plot_height;

    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        top + 18.0,
        escape(&chart.title)
    );
    // Axes and grid: five steps up the y axis, five along x.
    for step in 0..=5 {
        let value = y_max * step as f64 / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{right}" y1="{at}" y2="{at}" stroke="#ddd"/><text x="{label_x}" y="{label_y}" text-anchor="end">{text}</text>"##,
            right = LEFT + plot_width,
            at = y(value),
            label_x = LEFT - 6.0,
            label_y = y(value) + 4.0,
            text = short(value)
        );
        let t = x_max * step as f64 / 5.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}s</text>"#,
            x(t),
            top + HEIGHT - BOTTOM + 16.0,
            t.round()
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {0})" text-anchor="middle">{}</text>"#,
        top + TOP + plot_height / 2.0,
        chart.unit
    );
    let _ = writeln!(
        out,
        r#"<rect x="{LEFT}" y="{}" width="{plot_width}" height="{plot_height}" fill="none" stroke="black"/>"#,
        top + TOP
    );
    for (index, line) in chart.lines.iter().enumerate() {
        let path: Vec<String> = line
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            line.colour,
            path.join(" ")
        );
        let legend_y = top + TOP + 14.0 + 18.0 * index as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            WIDTH - RIGHT + 12.0,
            WIDTH - RIGHT + 32.0,
            line.colour,
            WIDTH - RIGHT + 38.0,
            legend_y + 4.0,
            escape(&line.name)
        );
    }
}

/// 1, 2 or 5 times a power of ten, at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * power)
}

fn short(value: f64) -> String {
    if value >= 100.0 || value == value.round() {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_lines_and_legends() {
        let svg = render(&[Chart {
            title: "p95 <ms>".into(),
            unit: "ms",
            lines: vec![Line {
                name: "p95".into(),
                colour: COLOURS[0],
                points: vec![(0.0, 1.0), (10.0, 7.0)],
            }],
        }]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("p95 &lt;ms&gt;"));
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(140.0), 200.0);
    }
}
