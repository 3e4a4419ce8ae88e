//! SVG plots (plotters, SVG backend only: text is written as SVG `<text>`, no font files needed).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Bounds of a log axis that hold every value with a margin.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// A tick label without needless decimals: 1000, 2.5, 0.05.
fn tick(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A log-log (or log-x, linear-y) line chart of `series` against the thread count.
pub fn line_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    log_y: bool,
    series: &[Series],
) -> Result<()> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let xs = log_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("threads in the target")
                .y_desc(y_desc)
                .label_style(("sans-serif", 14))
                .x_label_formatter(&|x| tick(*x))
                .y_label_formatter(&|y| tick(*y))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| !log_y || p.1 > 0.0)
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| anyhow!("{e:?}"))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| anyhow!("{e:?}"))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
        }};
    }
    if log_y {
        let (lo, hi) = log_range(ys);
        draw!(builder
            .build_cartesian_2d((xs.0..xs.1).log_scale(), (lo..hi).log_scale())
            .map_err(|e| anyhow!("{e:?}"))?);
    } else {
        let hi = ys.fold(0.0f64, f64::max).max(1.0) * 1.15;
        draw!(builder
            .build_cartesian_2d((xs.0..xs.1).log_scale(), 0.0..hi)
            .map_err(|e| anyhow!("{e:?}"))?);
    }
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_needless_decimals() {
        assert_eq!(tick(1000.0), "1000");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(0.05), "0.05");
    }

    #[test]
    fn svg_holds_title_axis_and_legend_text() {
        let dir = std::env::temp_dir().join(format!("context-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.svg");
        let series = [
            Series {
                name: "ptrace idle".into(),
                points: vec![(2.0, 0.5), (16.0, 2.0), (1000.0, 150.0)],
            },
            Series {
                name: "gdb idle".into(),
                points: vec![(2.0, 300.0), (1000.0, 4000.0)],
            },
        ];
        line_chart(&path, "snapshot time", "ms", true, &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // Text is written as SVG text (the content on the line after the tag).
        for text in [
            "snapshot time",
            "threads in the target",
            "ptrace idle",
            "gdb idle",
        ] {
            assert!(svg.contains(text), "{text:?} missing from the SVG");
        }
        assert!(
            svg.contains("rotate(270"),
            "the y axis description is missing"
        );
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
