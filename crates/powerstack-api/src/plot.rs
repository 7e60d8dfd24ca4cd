//! A job's node power over time as a picture, SVG or PNG (`powerstack job report --plot`, and
//! the site's dashboard): from a [`SiteTimeseriesV1`], one line per node with a legend, or, for
//! more than [`MAX_NODE_LINES`] nodes, the job's total above and the nodes' spread (lowest to
//! highest, and the mean) below. Time runs from the job's start, in s, min or h by its length;
//! powers are W. A step without data is a gap in a line, never 0 W.
//!
//! Pure Rust ([`plotters`] with its SVG and bitmap backends, [`png`] to encode): text is drawn
//! with DejaVu Sans embedded by the `dejavu` crate, so a PNG needs no font installed. An SVG names
//! the family `sans-serif` and leaves the glyphs to its viewer. Nothing here reads or writes a file.

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::site::SiteTimeseriesV1;

/// The most nodes drawn as a line each; above, the total and the spread are drawn instead.
pub const MAX_NODE_LINES: usize = 20;
/// Width of a plot, px.
pub const WIDTH_PX: u32 = 1200;
/// Height of a plot with one line per node, px.
pub const HEIGHT_PX: u32 = 600;
/// Height of a plot of the total and the spread, px.
pub const HEIGHT_SUMMARY_PX: u32 = 800;

const FONT: &str = "sans-serif";
const LEGEND_PX: u32 = 220;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be registered.
    #[error("the plot's embedded font could not be loaded; this is a bug of powerstack")]
    Font,
    /// The drawing itself failed.
    #[error("drawing the plot failed: {0}")]
    Draw(String),
    /// The PNG could not be encoded.
    #[error("encoding the PNG failed: {0}")]
    Png(String),
}

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// The plot's size, px: wider than tall, taller when the total and the spread are drawn.
pub fn size_px(ts: &SiteTimeseriesV1) -> (u32, u32) {
    if ts.nodes.len() > MAX_NODE_LINES {
        (WIDTH_PX, HEIGHT_SUMMARY_PX)
    } else {
        (WIDTH_PX, HEIGHT_PX)
    }
}

/// The plot as an SVG document. `origin_unix_us` is where the time axis starts (the job's
/// beginning), `title` its caption.
pub fn node_power_svg(
    ts: &SiteTimeseriesV1,
    title: &str,
    origin_unix_us: u64,
) -> Result<String, PlotError> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size_px(ts)).into_drawing_area();
        draw(&root, ts, title, origin_unix_us)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The plot as a PNG file's bytes (8-bit RGB).
pub fn node_power_png(
    ts: &SiteTimeseriesV1,
    title: &str,
    origin_unix_us: u64,
) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let (w, h) = size_px(ts);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (w, h))
            .map_err(draw_err)?;
        let root = backend.into_drawing_area();
        draw(&root, ts, title, origin_unix_us)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

/// 8-bit RGB pixels, `w` by `h`, as a PNG file's bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| PlotError::Png(e.to_string()))?;
    writer.write_image_data(rgb).map_err(|e| PlotError::Png(e.to_string()))?;
    writer.finish().map_err(|e| PlotError::Png(e.to_string()))?;
    Ok(out)
}

/// The time axis: its unit's name and seconds per unit, by the plot's length.
pub fn time_unit(length_s: f64) -> (&'static str, f64) {
    if length_s <= 120.0 {
        ("s", 1.0)
    } else if length_s <= 2.0 * 3600.0 {
        ("min", 60.0)
    } else {
        ("h", 3600.0)
    }
}

/// Runs of consecutive steps with a value: `(step, value)` each.
pub fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut run = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => run.push((i, v)),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// Per step, over the nodes with data: the sum, the lowest, the highest and the mean.
#[derive(Debug, Default, PartialEq)]
pub struct Spread {
    /// Sum over the nodes with data in the step, W.
    pub total: Vec<Option<f64>>,
    /// The lowest node's power, W.
    pub min: Vec<Option<f64>>,
    /// The highest node's power, W.
    pub max: Vec<Option<f64>>,
    /// The mean over the nodes with data, W.
    pub mean: Vec<Option<f64>>,
}

/// The [`Spread`] of every step.
pub fn spread(ts: &SiteTimeseriesV1) -> Spread {
    let steps = ts.nodes.iter().map(|n| n.watts.len()).max().unwrap_or(0);
    let mut s = Spread::default();
    for i in 0..steps {
        let values: Vec<f64> = ts
            .nodes
            .iter()
            .filter_map(|n| n.watts.get(i).copied().flatten())
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            s.total.push(None);
            s.min.push(None);
            s.max.push(None);
            s.mean.push(None);
            continue;
        }
        let sum: f64 = values.iter().sum();
        s.total.push(Some(sum));
        s.min.push(values.iter().copied().reduce(f64::min));
        s.max.push(values.iter().copied().reduce(f64::max));
        s.mean.push(Some(sum / values.len() as f64));
    }
    s
}

/// A line's colour: 20 that tell apart on white, then again.
fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 128),
        (170, 110, 40),
        (0, 128, 128),
        (128, 0, 0),
        (70, 240, 240),
        (240, 50, 230),
        (0, 100, 0),
        (255, 180, 0),
        (100, 100, 255),
        (0, 0, 0),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Where the steps fall on the time axis, in its unit.
struct Axis {
    unit: &'static str,
    /// What the time axis measures from, e.g. "the job began".
    since: &'static str,
    x0: f64,
    step: f64,
    steps: usize,
}

impl Axis {
    fn new(ts: &SiteTimeseriesV1, origin_unix_us: u64) -> Axis {
        let steps = ts.nodes.iter().map(|n| n.watts.len()).max().unwrap_or(0);
        let step_s = if ts.step_s.is_finite() && ts.step_s > 0.0 { ts.step_s } else { 1.0 };
        let offset_s = (ts.start_unix_us as f64 - origin_unix_us as f64) / 1e6;
        let (unit, per) = time_unit(offset_s.max(0.0) + steps as f64 * step_s);
        Axis { unit, since: "the job began", x0: offset_s / per, step: step_s / per, steps }
    }

    /// The middle of step `i`: its mean power is drawn there.
    fn x(&self, i: usize) -> f64 {
        self.x0 + (i as f64 + 0.5) * self.step
    }

    fn range(&self) -> std::ops::Range<f64> {
        let end = self.x0 + self.steps.max(1) as f64 * self.step;
        self.x0.min(0.0)..end
    }
}

fn y_max(series: &[&[Option<f64>]]) -> f64 {
    let top = series.iter().flat_map(|s| s.iter().flatten()).copied().fold(0.0, f64::max);
    if top > 0.0 { top * 1.1 } else { 1.0 }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    axis: &Axis,
    y_top: f64,
    y_desc: &str,
) -> Result<Chart<'a, DB>, PlotError> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(axis.range(), 0.0..y_top)
        .map_err(draw_err)?;
    let whole = |v: &f64| format!("{v:.0}");
    let tenths = |v: &f64| format!("{v:.1}");
    let y_label: &dyn Fn(&f64) -> String = if y_top >= 10.0 { &whole } else { &tenths };
    chart
        .configure_mesh()
        .x_desc(format!("time since {} ({})", axis.since, axis.unit))
        .y_desc(y_desc)
        .y_label_formatter(y_label)
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 19))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// Draws one series as lines through its runs (a lone point as a dot).
fn line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    axis: &Axis,
    values: &[Option<f64>],
    style: ShapeStyle,
) -> Result<(), PlotError> {
    for run in runs(values) {
        if let [(i, v)] = run[..] {
            let dot = Circle::new((axis.x(i), v), 3, style.filled());
            chart.draw_series(std::iter::once(dot)).map_err(draw_err)?;
        } else {
            let points = run.into_iter().map(|(i, v)| (axis.x(i), v));
            chart.draw_series(LineSeries::new(points, style)).map_err(draw_err)?;
        }
    }
    Ok(())
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 24)).color(&RGBColor(120, 120, 120));
    area.draw(&Text::new("no data in the job's window", (w as i32 / 2 - 130, h as i32 / 2), style))
        .map_err(draw_err)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    ts: &SiteTimeseriesV1,
    title: &str,
    origin_unix_us: u64,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.margin(8, 0, 0, 0).titled(title, (FONT, 28)).map_err(draw_err)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(LEGEND_PX));
    let axis = Axis::new(ts, origin_unix_us);
    let entries = if ts.nodes.len() > MAX_NODE_LINES {
        summary(&plot, &axis, ts)?
    } else {
        lines(&plot, &axis, ts)?
    };
    if ts.nodes.iter().all(|n| n.watts.iter().all(Option::is_none)) {
        no_data(&plot)?;
    }
    draw_legend(&legend, &entries)
}

/// One line per node.
fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &Axis,
    ts: &SiteTimeseriesV1,
) -> Result<Vec<(String, ShapeStyle)>, PlotError> {
    let all: Vec<&[Option<f64>]> = ts.nodes.iter().map(|n| n.watts.as_slice()).collect();
    let mut chart = chart(area, axis, y_max(&all), "node power (W)")?;
    let mut entries = Vec::new();
    for (i, node) in ts.nodes.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        line(&mut chart, axis, &node.watts, style)?;
        entries.push((node.node.clone(), style));
    }
    Ok(entries)
}

/// The job's total above; the nodes' lowest to highest (a band) and mean below.
fn summary<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &Axis,
    ts: &SiteTimeseriesV1,
) -> Result<Vec<(String, ShapeStyle)>, PlotError> {
    let s = spread(ts);
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
    let total_style = colour(0).stroke_width(2);
    let mut upper = chart(&top, axis, y_max(&[&s.total]), "job power, all nodes (W)")?;
    line(&mut upper, axis, &s.total, total_style)?;
    let band = colour(1).mix(0.3).filled();
    let mean_style = colour(1).stroke_width(2);
    let mut lower = chart(&bottom, axis, y_max(&[&s.max]), "node power (W)")?;
    let both: Vec<Option<(f64, f64)>> = s.min.iter().zip(&s.max).map(|(a, b)| a.zip(*b)).collect();
    let lows: Vec<Option<f64>> = both.iter().map(|p| p.map(|(lo, _)| lo)).collect();
    for run in runs(&lows) {
        let mut points: Vec<(f64, f64)> =
            run.iter().filter_map(|&(i, _)| both[i].map(|(_, hi)| (axis.x(i), hi))).collect();
        points.extend(run.iter().rev().map(|&(i, lo)| (axis.x(i), lo)));
        lower.draw_series(std::iter::once(Polygon::new(points, band))).map_err(draw_err)?;
    }
    line(&mut lower, axis, &s.mean, mean_style)?;
    Ok(vec![
        (format!("total of {} nodes", ts.nodes.len()), total_style),
        ("mean of a node".into(), mean_style),
        ("lowest to highest node".into(), band),
    ])
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, ShapeStyle)],
) -> Result<(), PlotError> {
    let text = TextStyle::from((FONT, 18)).color(&BLACK);
    let mut y = 40;
    for (label, style) in entries {
        let label: String = if label.chars().count() > 22 {
            label.chars().take(21).chain(std::iter::once('…')).collect()
        } else {
            label.clone()
        };
        if style.filled {
            area.draw(&Rectangle::new([(8, y - 6), (36, y + 6)], *style)).map_err(draw_err)?;
        } else {
            let stroke = ShapeStyle { stroke_width: 3, ..*style };
            area.draw(&PathElement::new(vec![(8, y), (36, y)], stroke)).map_err(draw_err)?;
        }
        area.draw(&Text::new(label, (44, y - 8), text.clone())).map_err(draw_err)?;
        y += 22;
    }
    Ok(())
}

pub mod lines;
#[cfg(test)]
mod tests;
