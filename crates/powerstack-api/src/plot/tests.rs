use super::*;
use crate::site::NodeSeriesV1;

fn series(nodes: usize, steps: usize) -> SiteTimeseriesV1 {
    SiteTimeseriesV1 {
        schema: "powerstack.site-timeseries.v1".into(),
        job_id: "42".into(),
        start_unix_us: 1_795_255_200_000_000,
        step_s: 10.0,
        nodes: (0..nodes)
            .map(|n| NodeSeriesV1 {
                node: format!("node{n:02}"),
                watts: (0..steps)
                    .map(|i| (i != 3).then_some(300.0 + 10.0 * n as f64 + i as f64))
                    .collect(),
                ..NodeSeriesV1::default()
            })
            .collect(),
    }
}

/// The data lines of an SVG: polylines 2 px wide.
fn lines_drawn(svg: &str) -> usize {
    svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\"")).count()
}

#[test]
fn runs_split_at_gaps_and_skip_what_is_not_a_number() {
    let v = [Some(1.0), Some(2.0), None, Some(3.0), Some(f64::NAN), None, Some(4.0), Some(5.0)];
    assert_eq!(runs(&v), vec![vec![(0, 1.0), (1, 2.0)], vec![(3, 3.0)], vec![(6, 4.0), (7, 5.0)]]);
    assert!(runs(&[None, None]).is_empty());
}

#[test]
fn the_spread_counts_only_nodes_with_data() {
    let mut ts = series(3, 5);
    ts.nodes[1].watts[0] = None;
    let s = spread(&ts);
    assert_eq!(s.total[0], Some(300.0 + 320.0));
    assert_eq!(s.min[0], Some(300.0));
    assert_eq!(s.max[0], Some(320.0));
    assert_eq!(s.mean[0], Some(310.0));
    // Step 3 has no data anywhere: no figure at all, not 0 W.
    assert_eq!((s.total[3], s.min[3], s.max[3], s.mean[3]), (None, None, None, None));
    assert_eq!(s.total.len(), 5);
}

#[test]
fn the_time_unit_follows_the_length() {
    assert_eq!(time_unit(90.0).0, "s");
    assert_eq!(time_unit(3600.0).0, "min");
    assert_eq!(time_unit(3.0 * 3600.0), ("h", 3600.0));
}

#[test]
fn an_svg_has_one_line_per_node_a_legend_and_labelled_axes() {
    let ts = series(3, 20);
    let svg = node_power_svg(&ts, "Job 42: node power", ts.start_unix_us).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in ["Job 42: node power", "node power (W)", "time since the job began (min)"] {
        assert!(svg.contains(text), "{text:?} missing");
    }
    for n in ["node00", "node01", "node02"] {
        assert!(svg.contains(&format!("\n{n}\n</text>")), "legend entry {n} missing");
    }
    // Each node's line breaks at its gap (step 3): two polylines a node (the axes are polylines
    // of width 1).
    assert_eq!(lines_drawn(&svg), 3 * 2, "{svg}");
}

#[test]
fn many_nodes_are_a_total_and_a_band() {
    let ts = series(MAX_NODE_LINES + 1, 10);
    let svg = node_power_svg(&ts, "big job", ts.start_unix_us).unwrap();
    assert!(svg.contains("total of 21 nodes"));
    assert!(svg.contains("lowest to highest node"));
    assert!(svg.contains("job power, all nodes (W)"));
    assert!(!svg.contains("\nnode05\n"), "no line a node above {MAX_NODE_LINES} nodes");
    assert!(svg.contains("<polygon"));
    assert_eq!(size_px(&ts), (WIDTH_PX, HEIGHT_SUMMARY_PX));
}

#[test]
fn a_png_decodes_and_has_text_drawn_with_the_embedded_font() {
    let ts = series(2, 30);
    let bytes = node_power_png(&ts, "Job 42", ts.start_unix_us).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (WIDTH_PX, HEIGHT_PX));
    // The title's band (above the chart) holds dark text pixels: the font rendered.
    let row_bytes = info.width as usize * 3;
    let dark = buf[..row_bytes * 30].chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
    assert!(dark > 20, "no text drawn in the title band ({dark} dark pixels)");
}

#[test]
fn no_data_is_said_not_drawn_as_zero() {
    let mut ts = series(2, 5);
    for n in &mut ts.nodes {
        n.watts = vec![None; 5];
    }
    let svg = node_power_svg(&ts, "empty", ts.start_unix_us).unwrap();
    assert!(svg.contains("no data in the job"));
    assert_eq!(lines_drawn(&svg), 0);
}
