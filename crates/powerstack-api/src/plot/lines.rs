//! A few named series over one time axis, SVG or PNG, with the job plot's axes, colours, legend
//! and font (`powerstack sim cluster --plot`: each policy's site power and the bound).

use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    Axis, FONT, HEIGHT_PX, LEGEND_PX, PlotError, WIDTH_PX, chart, colour, draw_err, draw_legend,
    encode_png, line, register_font, time_unit, y_max,
};

/// What to draw: series of values, one every `step_s` from 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Lines {
    /// The caption.
    pub title: String,
    /// What the vertical axis measures, with its unit, e.g. `site power (W)`.
    pub y_desc: String,
    /// What time counts from, e.g. `the start`.
    pub since: &'static str,
    /// Seconds between two values.
    pub step_s: f64,
    /// Each series: its name in the legend and its values (`None`: a gap).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

impl Lines {
    fn axis(&self) -> Axis {
        let steps = self.series.iter().map(|s| s.1.len()).max().unwrap_or(0);
        let step_s = if self.step_s.is_finite() && self.step_s > 0.0 { self.step_s } else { 1.0 };
        let (unit, per) = time_unit(steps as f64 * step_s);
        Axis { unit, since: self.since, x0: 0.0, step: step_s / per, steps }
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, l: &Lines) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.margin(8, 0, 0, 0).titled(&l.title, (FONT, 28)).map_err(draw_err)?;
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(LEGEND_PX));
    let axis = l.axis();
    let all: Vec<&[Option<f64>]> = l.series.iter().map(|s| s.1.as_slice()).collect();
    let mut chart = chart(&plot, &axis, y_max(&all), &l.y_desc)?;
    let mut entries = Vec::new();
    for (i, (name, values)) in l.series.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        line(&mut chart, &axis, values, style)?;
        entries.push((name.clone(), style));
    }
    draw_legend(&legend, &entries)
}

/// The series as an SVG document.
pub fn lines_svg(l: &Lines) -> Result<String, PlotError> {
    register_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        draw(&root, l)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// The series as a PNG file's bytes.
pub fn lines_png(l: &Lines) -> Result<Vec<u8>, PlotError> {
    register_font()?;
    let (w, h) = (WIDTH_PX, HEIGHT_PX);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (w, h))
            .map_err(draw_err)?;
        let root = backend.into_drawing_area();
        draw(&root, l)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&rgb, w, h)
}

#[cfg(test)]
mod tests {
    use super::{Lines, lines_png, lines_svg};

    #[test]
    fn two_series_are_drawn_with_their_names() {
        let l = Lines {
            title: "site power".into(),
            y_desc: "site power (W)".into(),
            since: "the start",
            step_s: 1.0,
            series: vec![
                ("bound".into(), vec![Some(100.0); 10]),
                ("uniform".into(), (0..10).map(|i| Some(90.0 + f64::from(i))).collect()),
            ],
        };
        let svg = lines_svg(&l).unwrap();
        assert!(svg.contains("uniform") && svg.contains("time since the start (s)"));
        assert!(lines_png(&l).unwrap().starts_with(b"\x89PNG"));
    }
}
