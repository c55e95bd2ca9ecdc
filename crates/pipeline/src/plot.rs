//! PNG charts drawn with plotters' bitmap backend straight into `image` buffers: line charts over
//! a timeline (with event markers), confusion-matrix heat maps, panels side by side or stacked,
//! and labels on video frames. Drawing clips at the image edges: no input makes it panic.
//!
//! All text is DejaVu Sans, embedded (Latin, Greek, Cyrillic and more; no system font is read),
//! laid out and rasterised with ab_glyph by `Pen`. plotters' own text (captions, mesh labels,
//! series labels) is not built in and must not be used: plotters 0.3.7's ab_glyph renderer drops
//! each glyph's side bearing, which spaces letters unevenly ("soccer b all").

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, Glyph, PxScale, ScaleFont, point};
use anyhow::{Context, Result};
use image::codecs::png::PngEncoder;
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

type Root<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn<T = ()> =
    Result<T, DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

// ---------------------------------------------------------------------------------------------
// Text

/// DejaVu Sans 2.37 from Debian's fonts-dejavu-core; licence and source in `assets/fonts/`.
static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// Font size in pixels (accents to descenders) of text at scale 1.
const TEXT_PX: u32 = 13;
/// Larger scales draw as this one (keeps glyph rasterisation cheap).
const MAX_SCALE: u32 = 16;

/// The embedded font, parsed once (None only if the bytes were not a font: no text then).
fn face() -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// The glyphs of `text` at `px`, kerned along a baseline one ascent below y = 0 from x = 0, and
/// their total advance.
fn layout(text: &str, px: f64) -> (Vec<Glyph>, f64) {
    let Some(face) = face() else {
        return (Vec::new(), 0.0);
    };
    let font = face.as_scaled(PxScale::from(px as f32));
    let (mut caret, mut prev, mut glyphs) = (0.0f32, None, Vec::new());
    for c in text.chars() {
        let id = font.glyph_id(c);
        caret += prev.map_or(0.0, |p| font.kern(p, id));
        glyphs.push(id.with_scale_and_position(px as f32, point(caret, font.ascent())));
        caret += font.h_advance(id);
        prev = Some(id);
    }
    (glyphs, f64::from(caret))
}

/// Text of one size (pixels from accents to descenders) and colour.
#[derive(Debug, Clone, Copy)]
struct Pen {
    px: f64,
    color: Rgb<u8>,
}

impl Pen {
    fn new(px: f64, color: Rgb<u8>) -> Self {
        Self { px, color }
    }

    fn with(self, color: Rgb<u8>) -> Self {
        Self::new(self.px, color)
    }

    fn width(self, text: &str) -> i64 {
        layout(text, self.px).1.ceil() as i64
    }

    /// Height of a line: where all the ink falls, the font size and a row for rounding.
    fn line(self) -> i64 {
        self.px as i64 + 1
    }

    /// `text`, cut short with "…" if it is wider than `max_width`.
    fn fit(self, text: &str, max_width: i64) -> String {
        if self.width(text) <= max_width {
            return text.to_string();
        }
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let fits = cuts.partition_point(|&i| self.width(&format!("{}…", &text[..i])) <= max_width);
        match fits {
            0 => String::new(),
            k => format!("{}…", text[..cuts[k - 1]].trim_end()),
        }
    }

    /// `text` with its top-left corner at `at`.
    fn write(self, root: &Root, at: (i64, i64), text: &str) -> Drawn {
        self.draw(root, at, text, false)
    }

    /// `text` turned 90 degrees counter-clockwise, reading upwards from `at`: over columns
    /// `x..x + line` and rows `y - width..y`.
    fn write_up(self, root: &Root, at: (i64, i64), text: &str) -> Drawn {
        self.draw(root, at, text, true)
    }

    fn draw(self, root: &Root, at: (i64, i64), text: &str, up: bool) -> Drawn {
        let (w, h) = root.dim_in_pixel();
        let (w, h) = (i64::from(w), i64::from(h));
        let (glyphs, len) = layout(text, self.px);
        let (len, line) = (len.ceil() as i64, self.line());
        let (x0, y0, x1, y1) = match up {
            true => (at.0, at.1 - len, at.0 + line, at.1),
            false => (at.0, at.1, at.0 + len, at.1 + line),
        };
        if x1 <= 0 || y1 <= 0 || x0 >= w || y0 >= h {
            return Ok(());
        }
        let color = rgb(self.color);
        let mut drawn = Ok(());
        for outline in glyphs.into_iter().filter_map(|g| face()?.outline_glyph(g)) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                // Along the line from its start, and down from its top.
                let (along, down) = (
                    b.min.x as i64 + i64::from(gx),
                    b.min.y as i64 + i64::from(gy),
                );
                let (x, y) = match up {
                    true => (at.0 + down, at.1 - 1 - along),
                    false => (at.0 + along, at.1 + down),
                };
                if drawn.is_ok() && x >= 0 && y >= 0 && x < w && y < h {
                    let ink = color.mix(f64::from(coverage.min(1.0)));
                    drawn = root.draw_pixel((x as i32, y as i32), &ink);
                }
            });
        }
        drawn
    }
}

/// The pen of scale `scale`: 0 counts as 1, above 16 as 16.
fn scaled(scale: u32) -> Pen {
    Pen::new(f64::from(TEXT_PX * scale.clamp(1, MAX_SCALE)), TEXT)
}

/// Width in pixels of `text` drawn at `scale` (0 counts as 1, above 16 as 16): its advance.
pub fn text_width(text: &str, scale: u32) -> u32 {
    scaled(scale).width(text) as u32
}

/// Height in pixels of a line of text at `scale`, where all its ink falls: 14 at scale 1 (a 13
/// pixel font and a row for rounding), 27 at 2.
pub fn text_height(scale: u32) -> u32 {
    scaled(scale).line() as u32
}

/// Draws `text` with its top-left corner at (`x`, `y`) in the embedded font, anti-aliased, within
/// [`text_width`] by [`text_height`] pixels. Clips at the image edges. Returns [`text_width`],
/// whether or not all of it was visible.
pub fn draw_text(
    img: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    color: Rgb<u8>,
    scale: u32,
) -> u32 {
    let (w, h) = img.dimensions();
    let root = BitMapBackend::with_buffer(img, (w, h)).into_drawing_area();
    let drawn = scaled(scale)
        .with(color)
        .write(&root, (i64::from(x), i64::from(y)), text);
    debug_assert!(drawn.is_ok(), "{drawn:?}");
    text_width(text, scale)
}

// ---------------------------------------------------------------------------------------------
// Colours and pixel rectangles

const WHITE_PX: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK_PX: Rgb<u8> = Rgb([0, 0, 0]);
const TEXT: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([232, 232, 232]);
const MARKER: Rgb<u8> = Rgb([110, 110, 110]);
const BAND: Rgb<u8> = Rgb([252, 214, 214]);
const LEGEND_EDGE: Rgb<u8> = Rgb([170, 170, 170]);

/// matplotlib's "tab10" colours, used in turn by the series of a chart.
pub const PALETTE: [Rgb<u8>; 10] = [
    Rgb([0x1f, 0x77, 0xb4]),
    Rgb([0xff, 0x7f, 0x0e]),
    Rgb([0x2c, 0xa0, 0x2c]),
    Rgb([0xd6, 0x27, 0x28]),
    Rgb([0x94, 0x67, 0xbd]),
    Rgb([0x8c, 0x56, 0x4b]),
    Rgb([0xe3, 0x77, 0xc2]),
    Rgb([0x7f, 0x7f, 0x7f]),
    Rgb([0xbc, 0xbd, 0x22]),
    Rgb([0x17, 0xbe, 0xcf]),
];

/// The colour of series `i`: [`PALETTE`], repeating.
pub fn series_color(i: usize) -> Rgb<u8> {
    PALETTE[i % PALETTE.len()]
}

fn rgb(c: Rgb<u8>) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// A half-open pixel rectangle `x0..x1` x `y0..y1` (may reach outside the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn new(x0: i64, y0: i64, w: i64, h: i64) -> Self {
        let (x1, y1) = (x0 + w, y0 + h);
        Self { x0, y0, x1, y1 }
    }

    fn width(self) -> i64 {
        (self.x1 - self.x0).max(0)
    }

    fn height(self) -> i64 {
        (self.y1 - self.y0).max(0)
    }

    fn contains(self, (x, y): (f64, f64)) -> bool {
        x >= self.x0 as f64 && x < self.x1 as f64 && y >= self.y0 as f64 && y < self.y1 as f64
    }

    fn overlaps(self, o: Rect) -> bool {
        self.x0.max(o.x0) < self.x1.min(o.x1) && self.y0.max(o.y0) < self.y1.min(o.y1)
    }

    /// One pixel bigger all round.
    fn grown(self) -> Rect {
        let (x0, y0, x1, y1) = (self.x0 - 1, self.y0 - 1, self.x1 + 1, self.y1 + 1);
        Rect { x0, y0, x1, y1 }
    }
}

fn fill(root: &Root, r: Rect, color: Rgb<u8>) -> Drawn {
    if r.width() == 0 || r.height() == 0 {
        return Ok(());
    }
    // The bitmap backend fills solid rectangles half-open, like Rect; clamped well inside i32.
    let c = |v: i64| v.clamp(-1 << 20, 1 << 20) as i32;
    let corners = [(c(r.x0), c(r.y0)), (c(r.x1), c(r.y1))];
    root.draw(&Rectangle::new(corners, rgb(color).filled()))
}

/// A one pixel outline just inside `r`.
fn outline(root: &Root, r: Rect, color: Rgb<u8>) -> Drawn {
    fill(root, Rect { y1: r.y0 + 1, ..r }, color)?;
    fill(root, Rect { y0: r.y1 - 1, ..r }, color)?;
    fill(root, Rect { x1: r.x0 + 1, ..r }, color)?;
    fill(root, Rect { x0: r.x1 - 1, ..r }, color)
}

// ---------------------------------------------------------------------------------------------
// Axes

/// `lo..hi` made usable as an axis range: ordered, finite and of non-zero width.
fn sane_range(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    // Keep the span representable.
    let (lo, hi) = (lo.clamp(-1e300, 1e300), hi.clamp(-1e300, 1e300));
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let mag = lo.abs().max(hi.abs());
    if hi - lo <= mag * 1e-9 {
        let mid = lo / 2.0 + hi / 2.0;
        let half = if mag > 1e-300 { mag * 0.1 } else { 1.0 };
        return (mid - half, mid + half);
    }
    (lo, hi)
}

/// Tick positions inside `lo..=hi` at a "nice" step (1, 2, 2.5 or 5 x 10^k) that gives closest
/// to five ticks, and the step.
fn nice_ticks(lo: f64, hi: f64) -> (Vec<f64>, f64) {
    let exp = ((hi - lo) / 4.0).log10().floor();
    let steps = [exp - 1.0, exp, exp + 1.0]
        .into_iter()
        .flat_map(|e| [1.0, 2.0, 2.5, 5.0].map(|m| m * 10f64.powf(e)))
        .filter(|step| step.is_finite() && *step > 0.0);
    // The last of the steps that miss five ticks by the least.
    let miss = |step: f64| ((hi / step).floor() - (lo / step).ceil() - 4.0).abs();
    let Some(step) = steps.min_by(|a, b| miss(*a).total_cmp(&miss(*b)).then(b.total_cmp(a))) else {
        return (Vec::new(), 0.0);
    };
    let first = (lo / step).ceil();
    let mut ticks: Vec<f64> = Vec::new();
    for i in 0..12 {
        let v = (first + f64::from(i)) * step;
        let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
        if v > hi + step * 1e-9 {
            break;
        }
        if ticks.last().is_none_or(|&last| v > last) {
            ticks.push(v);
        }
    }
    (ticks, step)
}

/// The fewest decimals (up to 15) that write `step` exactly enough.
fn decimals_for(step: f64) -> usize {
    let exact = |d: &i32| {
        let scaled = step.abs() * 10f64.powi(*d);
        (scaled - scaled.round()).abs() <= 1e-6 * scaled.max(1.0)
    };
    (0..15).find(exact).unwrap_or(15) as usize
}

fn trim_zeros(s: String) -> String {
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

/// A chart axis: a sane range, its ticks and their labels. Also the coordinate type plotters maps
/// data through, so that ticks and data agree.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    step: f64,
}

impl Axis {
    fn new((lo, hi): (f64, f64)) -> Self {
        let (ticks, step) = nice_ticks(lo, hi);
        Self {
            lo,
            hi,
            ticks,
            step,
        }
    }

    /// Tick labels: plain decimals, or "2.5e-4" style when the step is tiny or the values huge;
    /// trailing zeros dropped.
    fn labels(&self) -> Vec<String> {
        let max_abs = self.ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let scientific = self.step < 1e-3 || max_abs >= 1e6;
        let label = |v: f64| {
            if v == 0.0 || !scientific {
                let d = decimals_for(self.step);
                return trim_zeros(format!("{:.d$}", v + 0.0));
            }
            let mut e = v.abs().log10().floor() as i32;
            let d = decimals_for(self.step / 10f64.powi(e)).min(6);
            let mut mantissa = format!("{:.d$}", v / 10f64.powi(e));
            if mantissa.trim_start_matches('-').starts_with("10") {
                e += 1;
                mantissa = format!("{:.d$}", v / 10f64.powi(e));
            }
            format!("{}e{e}", trim_zeros(mantissa))
        };
        self.ticks.iter().map(|&v| label(v)).collect()
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (a, b): (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        // NaN casts to 0; clamped so that plotters' i32 arithmetic cannot overflow.
        let v = f64::from(a) + t * f64::from(b - a);
        v.round().clamp(-1e6, 1e6) as i32
    }

    fn key_points<H: KeyPointHint>(&self, _: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Where segment `a`-`b` lies inside the box `x` by `y`, as fractions `t0..=t1` of the way from
/// `a` to `b` (Liang-Barsky), or None if it misses.
fn clip(a: (f64, f64), b: (f64, f64), x: &Axis, y: &Axis) -> Option<(f64, f64)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x.lo),
        (dx, x.hi - a.0),
        (-dy, a.1 - y.lo),
        (dy, y.hi - a.1),
    ] {
        if p == 0.0 && q < 0.0 {
            return None;
        } else if p < 0.0 {
            t0 = t0.max(q / p);
        } else if p > 0.0 {
            t1 = t1.min(q / p);
        }
    }
    (t0 <= t1).then_some((t0, t1))
}

/// The visible parts of a series inside the axes' box: polylines, and single points that have no
/// finite neighbour (drawn as dots). Non-finite points are gaps.
fn pieces(points: &[(f64, f64)], x: &Axis, y: &Axis) -> Vec<Vec<(f64, f64)>> {
    // Clamped so that differences stay finite.
    let at = |k: usize| {
        let &(x, y) = points.get(k)?;
        let ok = x.is_finite() && y.is_finite();
        ok.then(|| (x.clamp(-1e300, 1e300), y.clamp(-1e300, 1e300)))
    };
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut open = false; // whether the next segment continues the last piece
    for (k, a) in (0..points.len()).filter_map(|k| Some((k, at(k)?))) {
        let lone = k == 0 || at(k - 1).is_none();
        let span = at(k + 1).map(|b| (b, clip(a, b, x, y)));
        match span {
            None if lone && clip(a, a, x, y).is_some() => out.push(vec![a]),
            Some((b, Some((t0, t1)))) => {
                let lerp = |t: f64| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                match out.last_mut() {
                    Some(last) if open && t0 == 0.0 => last.push(lerp(t1)),
                    _ => out.push(vec![lerp(t0), lerp(t1)]),
                }
                open = t1 == 1.0;
                continue;
            }
            _ => {}
        }
        open = false;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Line chart

/// A line series: name for the legend, points (x, y); NaN y values are gaps.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Shown in the legend; series with an empty name are left out of it.
    pub name: String,
    /// Drawn in order, joined by lines. A point with a non-finite coordinate is a gap; a point
    /// with no finite neighbour draws as a dot.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: series over a shared x axis, with optional event markers.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Centred above the plot.
    pub title: String,
    /// Below the x axis.
    pub x_label: String,
    /// Left of the y axis, reading upwards.
    pub y_label: String,
    /// Drawn in [`PALETTE`] order.
    pub series: Vec<Series>,
    /// Vertical marker lines at x with a short label (events on a timeline).
    pub markers: Vec<(f64, String)>,
    /// Fixed y range, or None to fit the data (with a little padding).
    pub y_range: Option<(f64, f64)>,
    /// Fixed x range (e.g. to line up stacked panels), or None to fit data and markers.
    pub x_range: Option<(f64, f64)>,
    /// Shaded x intervals behind everything else (anomalies on a timeline).
    pub bands: Vec<(f64, f64)>,
}

/// Length of a tick mark in pixels.
const TICK: i64 = 4;

/// The pen for a `width` x `height` chart's text: 12 to 16 pixels, growing with the chart.
fn chart_pen(width: u32, height: u32) -> Pen {
    let px = f64::from(width.min(height)) / 30.0;
    Pen::new(px.clamp(12.0, 16.0).round(), TEXT)
}

/// The plot area of a `width` x `height` chart with text `pen`. It depends on nothing else (not
/// on the tick labels), so that charts of one size with one x range put each x at the same column
/// and stacked panels line up. Left of it there is room for tick labels of about seven characters
/// ("-0.0025", "1.5e-3") and the y axis title.
fn plot_area(width: u32, height: u32, pen: Pen) -> Rect {
    let (line, pad) = (pen.line(), pen.line() / 2);
    let (w, h) = (i64::from(width), i64::from(height));
    let x0 = 3 * pad + line + (4.5 * pen.px) as i64 + TICK;
    let y0 = 3 * pad + line;
    let (x1, y1) = (w - 2 * line, h - TICK - 3 * pad - 2 * line);
    Rect { x0, y0, x1, y1 }
}

/// Width of series lines in a chart with text `pen`.
fn line_width(pen: Pen) -> u32 {
    (pen.px / 6.0).round().max(2.0) as u32
}

/// The finite points of `points`.
fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    points.iter().filter(finite).copied()
}

/// The smallest and largest of `values`, or None if there are none.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    (lo <= hi).then_some((lo, hi))
}

impl LineChart {
    /// The x range: [`LineChart::x_range`] if usable, else the data and the markers, edge
    /// to edge.
    fn x_range(&self) -> (f64, f64) {
        let usable = |r: &(f64, f64)| r.0.is_finite() && r.1.is_finite() && r.0 < r.1;
        let fixed = self.x_range.filter(usable);
        let points = self.series.iter().flat_map(|s| finite(&s.points));
        let markers = self.markers.iter().map(|m| m.0).filter(|x| x.is_finite());
        let (lo, hi) = fixed
            .or_else(|| extent(points.map(|p| p.0).chain(markers)))
            .unwrap_or((0.0, 1.0));
        sane_range(lo, hi)
    }

    /// The y range: [`LineChart::y_range`] if usable, else the data with 5% padding.
    fn y_range(&self) -> (f64, f64) {
        if let Some((lo, hi)) = self.y_range.filter(|r| r.0.is_finite() && r.1.is_finite()) {
            return sane_range(lo, hi);
        }
        let points = self.series.iter().flat_map(|s| finite(&s.points));
        let Some((lo, hi)) = extent(points.map(|p| p.1)) else {
            return (0.0, 1.0);
        };
        let (lo, hi) = sane_range(lo, hi);
        let pad = (hi - lo) * 0.05;
        sane_range(lo - pad, hi + pad)
    }

    /// Renders the chart as a `width` x `height` image (blank if too small for a plot).
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        self.render_with_area(width, height).0
    }

    /// [`LineChart::render`], and where the plot area went.
    fn render_with_area(&self, width: u32, height: u32) -> (RgbImage, Rect) {
        let mut img = RgbImage::from_pixel(width, height, WHITE_PX);
        let pen = chart_pen(width, height);
        let area = plot_area(width, height, pen);
        if area.width() >= 16 && area.height() >= 16 {
            let root = BitMapBackend::with_buffer(&mut img, (width, height)).into_drawing_area();
            let drawn = self.draw(&root, area, pen);
            debug_assert!(drawn.is_ok(), "{drawn:?}");
        }
        (img, area)
    }

    fn draw(&self, root: &Root, area: Rect, pen: Pen) -> Drawn {
        let (line, pad) = (pen.line(), pen.line() / 2);
        let (xa, ya) = (Axis::new(self.x_range()), Axis::new(self.y_range()));
        let [x0, y0, x1, y1] = [area.x0, area.y0, area.x1, area.y1].map(|v| v as i32);
        let pixels = (x0..x1 - 1, y1 - 1..y0);
        let coords = Cartesian2d::<Axis, Axis>::new(xa.clone(), ya.clone(), pixels);
        let plot = root.apply_coord_spec(coords);
        let at = |(x, y): (f64, f64)| {
            let (col, row) = plot.map_coordinate(&(x, y));
            (i64::from(col), i64::from(row))
        };

        // Bands first, under the grid.
        for &(from, to) in &self.bands {
            let (from, to) = (from.max(xa.lo), to.min(xa.hi));
            if from.is_finite() && to.is_finite() && from <= to {
                let (a, b) = (at((from, ya.lo)).0, at((to, ya.lo)).0);
                fill(
                    root,
                    Rect::new(a, area.y0, (b - a).max(2), area.height()),
                    BAND,
                )?;
            }
        }

        // Grid, tick marks and tick labels; x labels that would overlap the one before are
        // left out.
        let mut free_from = i64::MIN;
        for (&v, label) in xa.ticks.iter().zip(xa.labels()) {
            let (x, w) = (at((v, ya.lo)).0, pen.width(&label));
            fill(root, Rect::new(x, area.y0, 1, area.height()), GRID)?;
            fill(root, Rect::new(x, area.y1, 1, TICK), BLACK_PX)?;
            if x - w / 2 >= free_from {
                pen.write(root, (x - w / 2, area.y1 + TICK + pad / 2), &label)?;
                free_from = x + w / 2 + 2 * pad;
            }
        }
        let mut y_labels_w = 0;
        for (&v, label) in ya.ticks.iter().zip(ya.labels()) {
            let (y, w) = (at((xa.lo, v)).1, pen.width(&label));
            fill(root, Rect::new(area.x0, y, area.width(), 1), GRID)?;
            fill(root, Rect::new(area.x0 - TICK, y, TICK, 1), BLACK_PX)?;
            pen.write(root, (area.x0 - TICK - pad / 2 - w, y - line / 2), &label)?;
            y_labels_w = y_labels_w.max(w);
        }

        // Marker lines behind the data; their labels come later, on top.
        let mut markers: Vec<(i64, &str)> = (self.markers.iter())
            .filter(|(x, _)| *x >= xa.lo && *x <= xa.hi)
            .map(|(x, label)| (at((*x, ya.lo)).0, label.as_str()))
            .collect();
        markers.sort_by_key(|m| m.0);
        for &(x, _) in &markers {
            let ends = [(x as i32, y0), (x as i32, y1 - 1)];
            root.draw(&DashedPathElement::new(ends, 5, 4, rgb(MARKER)))?;
        }

        let width = line_width(pen);
        for (i, series) in self.series.iter().enumerate() {
            let color = rgb(series_color(i));
            for piece in pieces(&series.points, &xa, &ya) {
                match piece[..] {
                    [dot] => plot.draw(&Circle::new(dot, width + 1, color.filled()))?,
                    _ => plot.draw(&PathElement::new(piece, color.stroke_width(width)))?,
                }
            }
        }

        let labels = marker_labels(root, area, pen, &markers)?;
        let to_pixels = |p| {
            let (x, y) = at(p);
            (x as f64, y as f64)
        };
        self.draw_legend(root, area, pen, &to_pixels, &labels)?;
        outline(root, area.grown(), BLACK_PX)?;

        // Titles: the chart's, the x axis's below the tick labels, the y axis's reading upwards
        // left of them.
        let (w, _) = root.dim_in_pixel();
        let title_pen = Pen::new((1.2 * pen.px).round(), BLACK_PX);
        let title = title_pen.fit(&self.title, i64::from(w) - 2 * pad);
        let tw = title_pen.width(&title);
        title_pen.write(root, ((i64::from(w) - tw) / 2, pad), &title)?;
        let x_label = pen.fit(&self.x_label, area.width());
        let lw = pen.width(&x_label);
        let at = ((area.x0 + area.x1 - lw) / 2, area.y1 + TICK + pad + line);
        pen.write(root, at, &x_label)?;
        let y_label = pen.fit(&self.y_label, area.height());
        let lw = pen.width(&y_label);
        let x = (area.x0 - TICK - pad / 2 - y_labels_w - pad - line).max(pad);
        pen.write_up(root, (x, (area.y0 + area.y1 + lw) / 2), &y_label)
    }

    /// The legend, in the corner of the plot area that hides the least data (mapped to pixels by
    /// `to_pixels`) and none of the marker labels (`avoid`).
    fn draw_legend(
        &self,
        root: &Root,
        area: Rect,
        pen: Pen,
        to_pixels: &dyn Fn((f64, f64)) -> (f64, f64),
        avoid: &[Rect],
    ) -> Drawn {
        let (line, pad) = (pen.line(), pen.line() / 2);
        let named = self
            .series
            .iter()
            .enumerate()
            .filter(|s| !s.1.name.is_empty());
        let entries: Vec<(usize, &str)> = named.map(|(i, s)| (i, s.name.as_str())).collect();
        let (row_h, sample) = (line + pad / 2, 2 * line);
        let max_rows = ((area.height() - 3 * pad) / row_h).max(0) as usize;
        if entries.is_empty() || max_rows == 0 {
            return Ok(());
        }
        let name_w = area.width() / 2 - sample - 3 * pad;
        // All the names, or as many as fit and a count of the others.
        let shown = match entries.len() > max_rows {
            true => max_rows - 1,
            false => entries.len(),
        };
        let mut rows: Vec<(Option<usize>, String)> = (entries[..shown].iter())
            .map(|&(i, name)| (Some(i), pen.fit(name, name_w)))
            .collect();
        if shown < entries.len() {
            let more = format!("(+{} more)", entries.len() - shown);
            rows.push((None, pen.fit(&more, name_w)));
        }
        let text_w = rows.iter().map(|r| pen.width(&r.1)).max().unwrap_or(0);
        let w = 4 * pad + sample + text_w;
        let h = 2 * pad + rows.len() as i64 * row_h - pad / 2;
        let corners = [
            Rect::new(area.x1 - pad - w, area.y0 + pad, w, h),
            Rect::new(area.x0 + pad, area.y0 + pad, w, h),
            Rect::new(area.x1 - pad - w, area.y1 - pad - h, w, h),
            Rect::new(area.x0 + pad, area.y1 - pad - h, w, h),
        ];
        // Score each corner by the data it would cover, sampled along the segments, and by the
        // marker labels under it.
        let cost = |r: &Rect| {
            let mut n = 1000 * avoid.iter().filter(|a| a.overlaps(*r)).count();
            for series in &self.series {
                let points: Vec<(f64, f64)> = finite(&series.points).map(to_pixels).collect();
                for (k, &(qx, qy)) in points.iter().enumerate() {
                    let (px, py) = points[k.saturating_sub(1)];
                    let along = (0..8).map(|i| f64::from(i) / 8.0);
                    n += along
                        .filter(|t| r.contains((px + (qx - px) * t, py + (qy - py) * t)))
                        .count();
                }
            }
            n
        };
        let r = corners.into_iter().min_by_key(cost).unwrap_or(corners[0]);
        fill(root, r, WHITE_PX)?;
        outline(root, r, LEGEND_EDGE)?;
        for (k, (series, text)) in rows.iter().enumerate() {
            let y = r.y0 + pad + k as i64 * row_h;
            if let Some(i) = *series {
                let (x, mid) = ((r.x0 + pad) as i32, (y as f64 + 0.55 * pen.px) as i32);
                let style = rgb(series_color(i)).stroke_width(line_width(pen));
                let ends = [(x, mid), (x + sample as i32, mid)];
                root.draw(&PathElement::new(ends, style))?;
            }
            pen.write(root, (r.x0 + 2 * pad + sample, y), text)?;
        }
        Ok(())
    }
}

/// Marker labels along the top of the plot area, right of their line (left near the right edge),
/// on a white patch, moved down a row where they would overlap one before. Returns where they
/// went.
fn marker_labels(root: &Root, area: Rect, pen: Pen, markers: &[(i64, &str)]) -> Drawn<Vec<Rect>> {
    let pen = pen.with(MARKER);
    let mut placed: Vec<Rect> = Vec::new();
    let row_h = pen.line() + 3;
    let rows = ((area.height() - 4) / row_h).clamp(1, 4);
    for &(x, label) in markers.iter().filter(|m| !m.1.is_empty()) {
        let label = pen.fit(label, area.width() / 3);
        let w = pen.width(&label);
        let lx = x + if x + 6 + w <= area.x1 { 4 } else { -4 - w };
        let at = |row: i64| Rect::new(lx - 2, area.y0 + 2 + row * row_h, w + 4, pen.line());
        let free = |r: &Rect| !placed.iter().any(|p| p.overlaps(*r));
        let rect = (0..rows).map(at).find(free).unwrap_or(at(rows - 1));
        fill(root, rect, WHITE_PX)?;
        pen.write(root, (lx, rect.y0), &label)?;
        placed.push(rect);
    }
    Ok(placed)
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

/// Classes beyond this many are left out of a confusion matrix image (and the title says so).
const MAX_MATRIX_CLASSES: usize = 2000;
/// Counts are written in the cells up to this many classes.
const MAX_NUMBERED_CLASSES: usize = 30;

/// White to dark blue (matplotlib's "Blues" ends, through its middle) for `t` in 0..=1.
fn blues(t: f64) -> Rgb<u8> {
    const STOPS: [[f64; 3]; 3] = [
        [247.0, 251.0, 255.0],
        [107.0, 174.0, 214.0],
        [8.0, 48.0, 107.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (a, b, u) = match t < 0.5 {
        true => (STOPS[0], STOPS[1], t * 2.0),
        false => (STOPS[1], STOPS[2], t * 2.0 - 1.0),
    };
    let mix = |k: usize| (a[k] + (b[k] - a[k]) * u).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// A count written to fit a narrow cell: 987, 12k, 3.4M.
fn short_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{}k", n / 1000),
        1_000_000..=9_999_999 => format!("{:.1}M", n as f64 / 1e6),
        10_000_000..=999_999_999 => format!("{}M", n / 1_000_000),
        _ => format!("{:.0e}", n as f64),
    }
}

/// Confusion matrix heat map: rows = true class, columns = predicted; each cell shows its count;
/// axis labels are class names; a title. Cells are shaded white to blue by their share of the
/// row. The cell size shrinks with the number of classes; above 30 classes the counts are left
/// out, and labels are thinned where cells are too narrow for them. Missing counts (ragged or
/// short rows) count as 0; classes without a name are labelled by index.
pub fn confusion_matrix(title: &str, classes: &[String], counts: &[Vec<u64>]) -> RgbImage {
    confusion_matrix_with_cells(title, classes, counts).0
}

/// [`confusion_matrix`], and the rectangle of its top-left cell (None without classes).
fn confusion_matrix_with_cells(
    title: &str,
    classes: &[String],
    counts: &[Vec<u64>],
) -> (RgbImage, Option<Rect>) {
    let n_all = classes.len().max(counts.len());
    let n = n_all.min(MAX_MATRIX_CLASSES);
    let title = match n < n_all {
        true => format!("{title} (first {n} of {n_all} classes)"),
        false => title.to_string(),
    };
    let (title_pen, pad) = (Pen::new(18.0, BLACK_PX), 8);
    let (title_w, title_h) = (title_pen.width(&title), 2 * pad + title_pen.line());
    let numbers = n <= MAX_NUMBERED_CLASSES;
    let cell: i64 = match n {
        0 => 0,
        _ if numbers => (720 / n as i64).clamp(28, 64),
        _ => (960 / n as i64).clamp(1, 24),
    };
    let pen = Pen::new(if cell >= 40 { 14.0 } else { 12.0 }, TEXT);
    let line = pen.line();
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    let names: Vec<String> = (0..n).map(|i| pen.fit(&name(i), 10 * line)).collect();
    let name_w = names.iter().map(|s| pen.width(s)).max().unwrap_or(0);
    // Column names go across when all fit a cell, else upwards.
    let across = names.iter().all(|s| pen.width(s) <= cell - 4);
    let col_h = if across { line } else { name_w };
    let (mx, my) = (3 * pad + line + name_w, title_h + 3 * pad + line + col_h);
    let side = cell * n as i64;
    let (width, height) = match n {
        0 => ((title_w + 2 * pad).max(200), title_h + 3 * pad),
        _ => ((mx + side).max(title_w) + 2 * pad, my + side + 2 * pad),
    };
    let (width, height) = (width as u32, height as u32);
    let mut img = RgbImage::from_pixel(width, height, WHITE_PX);
    let root = BitMapBackend::with_buffer(&mut img, (width, height)).into_drawing_area();
    let count = |r: usize, c: usize| counts.get(r).and_then(|row| row.get(c)).copied();
    let drawn = (|| -> Drawn {
        title_pen.write(&root, ((i64::from(width) - title_w) / 2, pad), &title)?;
        if n == 0 {
            return Pen::new(13.0, TEXT).write(&root, (pad, title_h), "(no classes)");
        }
        let head = pen.with(BLACK_PX);
        let (pred_w, true_w) = (head.width("Predicted"), head.width("True"));
        head.write(&root, (mx + (side - pred_w) / 2, title_h), "Predicted")?;
        head.write_up(&root, (pad, my + (side + true_w) / 2), "True")?;
        for r in 0..n {
            let row: Vec<u64> = (0..n).map(|c| count(r, c).unwrap_or(0)).collect();
            let total = row.iter().fold(0u64, |t, k| t.saturating_add(*k));
            for (c, &k) in row.iter().enumerate() {
                let share = k as f64 / total.max(1) as f64;
                let rect = Rect::new(mx + c as i64 * cell, my + r as i64 * cell, cell, cell);
                fill(&root, rect, blues(share))?;
                if numbers {
                    let color = if share > 0.5 { WHITE_PX } else { BLACK_PX };
                    let (mut ink, mut text) = (pen.with(color), k.to_string());
                    if ink.width(&text) > cell - 4 {
                        (ink.px, text) = (11.0, short_count(k));
                    }
                    let (w, h) = (ink.width(&text), ink.line());
                    let at = (rect.x0 + (cell - w) / 2, rect.y0 + (cell - h) / 2);
                    ink.write(&root, at, &text)?;
                }
            }
        }
        if cell >= 6 {
            for k in 1..n as i64 {
                fill(&root, Rect::new(mx + k * cell, my, 1, side), WHITE_PX)?;
                fill(&root, Rect::new(mx, my + k * cell, side, 1), WHITE_PX)?;
            }
        }
        outline(&root, Rect::new(mx, my, side, side).grown(), LEGEND_EDGE)?;
        // Label every stride-th class where cells are thinner than a line of text.
        let stride = ((line + line / 5 + cell - 1) / cell).max(1) as usize;
        for (i, name) in names.iter().enumerate().step_by(stride) {
            let (w, centre) = (pen.width(name), i as i64 * cell + cell / 2);
            pen.write(&root, (mx - pad - w, my + centre - line / 2), name)?;
            match across {
                true => pen.write(&root, (mx + centre - w / 2, my - pad - line), name)?,
                false => pen.write_up(&root, (mx + centre - line / 2, my - pad), name)?,
            }
        }
        Ok(())
    })();
    debug_assert!(drawn.is_ok(), "{drawn:?}");
    drop(root);
    (img, (n > 0).then(|| Rect::new(mx, my, cell, cell)))
}

// ---------------------------------------------------------------------------------------------
// Panels and files

/// Panels side by side, top-aligned, on white where their heights differ.
pub fn hstack(images: &[RgbImage]) -> RgbImage {
    let width: u64 = images.iter().map(|i| u64::from(i.width())).sum();
    let height = images.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(u32::try_from(width).unwrap_or(u32::MAX), height, WHITE_PX);
    let mut x = 0i64;
    for im in images {
        image::imageops::replace(&mut out, im, x, 0);
        x += i64::from(im.width());
    }
    out
}

/// Panels stacked top to bottom, left-aligned, on white where their widths differ.
pub fn vstack(images: &[RgbImage]) -> RgbImage {
    let height: u64 = images.iter().map(|i| u64::from(i.height())).sum();
    let width = images.iter().map(RgbImage::width).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(width, u32::try_from(height).unwrap_or(u32::MAX), WHITE_PX);
    let mut y = 0i64;
    for im in images {
        image::imageops::replace(&mut out, im, 0, y);
        y += i64::from(im.height());
    }
    out
}

/// Writes PNG atomically ([`AtomicFile`](crate::output::AtomicFile): a temporary sibling,
/// fsynced, renamed into place); creates parent dirs. The error names the path.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let write = || -> Result<()> {
        let mut out = crate::output::AtomicFile::create(path)?;
        img.write_with_encoder(PngEncoder::new(&mut out))?;
        out.commit()
    };
    write().with_context(|| format!("writing PNG {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The pixels of `img` inside `r`.
    fn pixels_in(img: &RgbImage, r: Rect) -> Vec<Rgb<u8>> {
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        let at = |(x, y): (i64, i64)| *img.get_pixel(x as u32, y as u32);
        let row = |y| (r.x0.max(0)..r.x1.min(w)).map(move |x| (x, y));
        (r.y0.max(0)..r.y1.min(h)).flat_map(row).map(at).collect()
    }

    /// Bounding box (x0, y0, x1, y1 inclusive) of the pixels that are not white.
    fn ink_box(img: &RgbImage) -> Option<(u32, u32, u32, u32)> {
        let ink = img.enumerate_pixels().filter(|(_, _, p)| **p != WHITE_PX);
        ink.fold(None, |b, (x, y, _)| {
            let (x0, y0, x1, y1) = b.unwrap_or((x, y, x, y));
            Some((x0.min(x), y0.min(y), x1.max(x), y1.max(y)))
        })
    }

    /// How many pixels of exactly `color` lie inside `r`, and how many in all.
    fn count(img: &RgbImage, color: Rgb<u8>, r: Rect) -> (usize, usize) {
        let hits = img.enumerate_pixels().filter(|(_, _, p)| **p == color);
        let at = |(x, y, _)| (f64::from(x), f64::from(y));
        hits.map(at)
            .fold((0, 0), |(i, n), p| (i + usize::from(r.contains(p)), n + 1))
    }

    /// `text` alone, black on white, at scale 1.
    fn rendered(text: &str) -> RgbImage {
        let mut img = RgbImage::from_pixel(300, 30, WHITE_PX);
        draw_text(&mut img, 5, 5, text, BLACK_PX, 1);
        img
    }

    #[test]
    fn greek_and_cyrillic_labels_draw_their_glyphs() {
        // U+1F600 is not in DejaVu Sans: it draws as the font's "missing glyph" box.
        let missing = rendered(&"\u{1F600}".repeat(6));
        for text in ["Ωμέγα", "Привет", "λ → Ж"] {
            let img = rendered(text);
            let dark = img.pixels().filter(|p| p[0] < 128).count();
            assert!(dark > 40, "{text}: {dark} dark pixels");
            assert_ne!(img, missing, "{text} drew as missing glyphs");
        }
        assert_ne!(rendered("αβγ"), rendered("абв"));
        assert!(text_width("Привет", 1) > text_width("При", 1));
    }

    #[test]
    fn text_stays_in_its_box() {
        let texts = "MW/Hello, World! 123/q/Éjpgy/Ωμέγα Привет/ÅЩ|()[]{}".split('/');
        for (text, scale) in texts.flat_map(|t| (1..=3).map(move |s| (t, s))) {
            let mut img = RgbImage::from_pixel(600, 80, WHITE_PX);
            let drawn = draw_text(&mut img, 3, 4, text, BLACK_PX, scale);
            assert_eq!(drawn, text_width(text, scale));
            let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
            let across = x0 >= 3 && x0 <= 3 + 2 * scale && x1 <= 3 + drawn + scale;
            let down = y0 >= 4 && y1 < 4 + text_height(scale);
            assert!(across && down, "{text} at {scale}: {x0},{y0} to {x1},{y1}");
        }
        assert_eq!((text_height(1), text_height(2)), (14, 27));
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("ab", 0), text_width("ab", 1));
        assert_eq!(text_width("ab", u32::MAX), text_width("ab", MAX_SCALE));
    }

    #[test]
    fn text_clips_at_every_edge_without_panicking() {
        let mut img = RgbImage::from_pixel(20, 10, WHITE_PX);
        let (min, max) = (i32::MIN, i32::MAX);
        for (x, y) in [(-7, -3), (15, 5), (-100, 0), (0, 9), (min, min), (max, max)] {
            for scale in [0, 1, 3, u32::MAX] {
                draw_text(&mut img, x, y, "Clip me ~ {}", BLACK_PX, scale);
                let root = BitMapBackend::with_buffer(&mut img, (20, 10)).into_drawing_area();
                let at = (i64::from(x), i64::from(y));
                scaled(scale).write_up(&root, at, "Clip me").expect("drawn");
            }
        }
        // Half off the left edge: the visible part is the right-hand side of the text.
        let mut whole = RgbImage::from_pixel(20, 16, WHITE_PX);
        let mut cut = RgbImage::from_pixel(16, 16, WHITE_PX);
        draw_text(&mut whole, 0, 0, "H", BLACK_PX, 1);
        draw_text(&mut cut, -4, 0, "H", BLACK_PX, 1);
        assert!(ink_box(&cut).is_some());
        assert_eq!(
            cut,
            image::imageops::crop_imm(&whole, 4, 0, 16, 16).to_image()
        );
        let width = draw_text(&mut RgbImage::new(0, 0), 0, 0, "abc", BLACK_PX, 1);
        assert_eq!(width, text_width("abc", 1));
    }

    #[test]
    fn upward_text_occupies_the_rotated_box() {
        let mut img = RgbImage::from_pixel(60, 120, WHITE_PX);
        let pen = Pen::new(26.0, BLACK_PX);
        let root = BitMapBackend::with_buffer(&mut img, (60, 120)).into_drawing_area();
        pen.write_up(&root, (5, 110), "WMÉg").expect("drawn");
        drop(root);
        let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
        let len = pen.width("WMÉg") as u32;
        let across = x0 >= 5 && x1 < 5 + pen.line() as u32;
        let down = y0 + 2 >= 110 - len && (100..110).contains(&y1);
        assert!(across && down, "{x0},{y0} to {x1},{y1}, length {len}");
    }

    #[test]
    fn fit_text_shortens_to_the_width() {
        let pen = Pen::new(13.0, TEXT);
        assert_eq!(pen.fit("short", 100), "short");
        let long = pen.fit("a rather long class name", 60);
        assert!(pen.width(&long) <= 60 && long.ends_with('…'), "{long}");
        assert!(pen.fit("abc", 0).is_empty());
        assert!(pen.fit("Привет, мир", 50).starts_with("Прив"));
    }

    #[test]
    fn ticks_are_nice_and_labelled_compactly() {
        let labels = |lo, hi| Axis::new((lo, hi)).labels();
        assert_eq!(labels(0.0, 1.0), ["0", "0.25", "0.5", "0.75", "1"]);
        assert_eq!(labels(-1.0, 1.0), ["-1", "-0.5", "0", "0.5", "1"]);
        assert_eq!(labels(0.0, 0.002), ["0", "5e-4", "1e-3", "1.5e-3", "2e-3"]);
        assert_eq!(labels(0.0, 4e6), ["0", "1e6", "2e6", "3e6", "4e6"]);
        assert_eq!(labels(0.03, 117.0), ["20", "40", "60", "80", "100"]);
        let ranges = [(0.0, 7.0), (-3.3, 12.9), (1e-9, 3e-9), (100.0, 100.5)];
        for (lo, hi) in ranges.into_iter().chain([(-1e300, 1e300), (0.1, 0.7)]) {
            let (t, step) = nice_ticks(lo, hi);
            let inside = |v: &f64| *v >= lo - step * 1e-6 && *v <= hi + step * 1e-6;
            let m = step / 10f64.powf(step.log10().floor());
            let nice = [1.0, 2.0, 2.5, 5.0].iter().any(|n| (m - n).abs() < 1e-9);
            let ok = (3..=7).contains(&t.len()) && t.iter().all(inside) && nice;
            assert!(ok, "{lo}..{hi}: {t:?}, step {step}");
        }
        let spans = (1..200).map(|k| nice_ticks(0.0, f64::from(k) * 0.37).0.len());
        let fours_to_sixes = spans.filter(|n| (4..=6).contains(n)).count();
        assert!(
            fours_to_sixes >= 190,
            "{fours_to_sixes} of 199 ranges with 4-6 ticks"
        );
        assert!(nice_ticks(1.0, 1.0).0.is_empty() && nice_ticks(f64::NAN, 1.0).0.is_empty());
    }

    #[test]
    fn ranges_are_made_usable() {
        assert_eq!(sane_range(2.0, 1.0), (1.0, 2.0));
        let ((a, b), (c, d)) = (sane_range(5.0, 5.0), sane_range(0.0, 0.0));
        assert!(a < 5.0 && b > 5.0 && c < 0.0 && d > 0.0);
        assert_eq!(sane_range(f64::NAN, 1.0), (0.0, 1.0));
        let (lo, hi) = sane_range(-f64::MAX, f64::MAX);
        assert!((hi - lo).is_finite());
    }

    #[test]
    fn series_are_clipped_into_pieces_at_gaps_and_edges() {
        let (x, y, nan) = (Axis::new((0.0, 10.0)), Axis::new((0.0, 1.0)), f64::NAN);
        // A gap splits the line; a point with no finite neighbour is a dot.
        let points = [
            (0.0, 0.5),
            (1.0, 0.5),
            (2.0, nan),
            (3.0, 0.2),
            (nan, 0.0),
            (5.0, 0.1),
        ];
        let expected = [
            vec![(0.0, 0.5), (1.0, 0.5)],
            vec![(3.0, 0.2)],
            vec![(5.0, 0.1)],
        ];
        assert_eq!(pieces(&points, &x, &y), expected);
        // Leaving the box and coming back makes two pieces, cut at the edge.
        let points = [(0.0, 0.5), (1.0, 1.5), (2.0, 0.5)];
        let expected = [vec![(0.0, 0.5), (0.5, 1.0)], vec![(1.5, 1.0), (2.0, 0.5)]];
        assert_eq!(pieces(&points, &x, &y), expected);
        assert!(pieces(&[(20.0, 0.5), (30.0, 0.5), (40.0, 0.5)], &x, &y).is_empty());
    }

    fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
        let name = name.to_string();
        Series { name, points }
    }

    fn two_series_chart() -> LineChart {
        let xs = (0..100).map(|i| f64::from(i) * 0.1);
        LineChart {
            title: "Two series".into(),
            x_label: "time (s)".into(),
            y_label: "score".into(),
            series: vec![
                series("sin", xs.clone().map(|x| (x, x.sin())).collect()),
                series("cos", xs.map(|x| (x, x.cos())).collect()),
            ],
            markers: vec![(2.0, "cut".into()), (7.5, "goal".into())],
            ..LineChart::default()
        }
    }

    #[test]
    fn series_pixels_appear_inside_the_plot_area() {
        let (img, area) = two_series_chart().render_with_area(640, 400);
        assert_eq!(img.dimensions(), (640, 400));
        let margins = area.x0 > 20 && area.y0 > 10 && area.x1 < 640 && area.y1 < 380;
        assert!(margins, "{area:?}");
        for color in [PALETTE[0], PALETTE[1]] {
            let (inside, all) = count(&img, color, area);
            assert!(
                inside > 500 && inside == all,
                "{color:?}: {inside} of {all} inside"
            );
        }
        assert_eq!(count(&img, PALETTE[2], area).1, 0);
    }

    #[test]
    fn data_lands_where_the_axes_say() {
        let chart = LineChart {
            series: vec![series("", vec![(0.0, 0.5), (10.0, 0.5)])],
            y_range: Some((0.0, 1.0)),
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        // The line is 2 pixels wide around the middle row.
        let middle = Rect::new(area.x0, (area.y0 + area.y1) / 2 - 2, area.width(), 4);
        let (inside, all) = count(&img, PALETTE[0], middle);
        assert!(
            inside > 2 * 200 && inside == all,
            "{inside} of {all} in the middle"
        );
        // A fixed range clips data outside it to the plot area.
        let chart = LineChart {
            series: vec![series(
                "big",
                vec![(0.0, -1e9), (1.0, 1e9), (2.0, f64::MAX)],
            )],
            y_range: Some((0.0, 1.0)),
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        let (inside, all) = count(&img, PALETTE[0], area);
        assert!(inside > 0 && inside == all, "{inside} of {all} inside");
    }

    /// Regression: the run timeline stacks two charts, and their plot areas started at different
    /// columns (their y tick labels differed in width), so an event's line sat at a different x
    /// in each panel.
    #[test]
    fn stacked_panels_put_a_marker_at_the_same_column() {
        let panel = |y_label: &str, y: f64| LineChart {
            title: "panel".into(),
            y_label: y_label.into(),
            series: vec![series("s", vec![(0.0, 0.0), (60.0, y)])],
            markers: vec![(23.7, "event".into())],
            x_range: Some((0.0, 60.0)),
            bands: Vec::new(),
            ..LineChart::default()
        };
        let columns = |img: &RgbImage| -> Vec<u32> {
            let marked = |x| (0..img.height()).filter(move |&y| *img.get_pixel(x, y) == MARKER);
            (0..img.width())
                .filter(|&x| marked(x).count() > 60)
                .collect()
        };
        let (a, area_a) = panel("surprise", 123_456.0).render_with_area(1000, 360);
        let (b, area_b) = panel("probability", 0.001).render_with_area(1000, 360);
        assert_eq!(area_a, area_b);
        let (ca, cb) = (columns(&a), columns(&b));
        assert_eq!(ca.len(), 1, "{ca:?}");
        assert_eq!(ca, cb);
        assert_eq!(columns(&vstack(&[a, b])), ca);
    }

    #[test]
    fn awkward_data_never_panics() {
        let (nan, inf, max) = (f64::NAN, f64::INFINITY, f64::MAX);
        let cases: Vec<Vec<(f64, f64)>> = vec![
            vec![],
            vec![(1.0, 2.0)],
            vec![(nan, nan), (inf, 1.0), (1.0, -inf)],
            vec![(0.0, 3.0), (1.0, 3.0), (2.0, 3.0)],
            vec![(5.0, 1.0), (5.0, 2.0), (5.0, nan), (5.0, 0.5)],
            vec![(0.0, 1.0), (1.0, nan), (2.0, 1.5), (3.0, 2.0)],
            vec![(-max, max), (max, -max), (0.0, f64::MIN_POSITIVE)],
            vec![(1e15, 1.0), (1e15 + 0.25, 1.0 + 1e-15)],
            vec![(0.0, 1e-320), (1.0, 2e-320)],
        ];
        let ranges = [
            Some((nan, 1.0)),
            Some((2.0, 2.0)),
            Some((3.0, -3.0)),
            Some((0.0, inf)),
        ];
        let markers = [
            (nan, "nan"),
            (1.0, &"m".repeat(300)),
            (1.0, "same"),
            (inf, ""),
        ];
        let sizes = [(0, 0), (1, 1), (7, 300), (40, 30), (320, 200), (900, 600)];
        for (points, y_range) in cases
            .iter()
            .flat_map(|c| [None].into_iter().chain(ranges).map(move |r| (c, r)))
        {
            let chart = LineChart {
                title: "\u{1F600} edge \t cases".into(),
                x_label: "x".repeat(500),
                y_label: "y".into(),
                series: vec![series("data", points.clone()), series("empty", vec![])],
                markers: markers.iter().map(|(x, l)| (*x, l.to_string())).collect(),
                y_range,
                x_range: y_range,
                bands: Vec::new(),
            };
            for (w, h) in sizes {
                assert_eq!(chart.render(w, h).dimensions(), (w, h));
            }
        }
        assert_eq!(LineChart::default().render(100, 80).dimensions(), (100, 80));
    }

    #[test]
    fn a_lone_point_draws_as_a_dot() {
        let points = vec![(f64::NAN, 0.0), (3.0, 4.0), (4.0, f64::NAN)];
        let chart = LineChart {
            series: vec![series("one", points)],
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        // Legend sample aside, the dot sits in the middle of the plot (x and y ranges both
        // centre on the single point).
        let (cx, cy) = ((area.x0 + area.x1) / 2, (area.y0 + area.y1) / 2);
        let (middle, _) = count(&img, PALETTE[0], Rect::new(cx - 5, cy - 5, 10, 10));
        assert!(middle >= 9, "{middle} pixels in the middle");
    }

    #[test]
    fn legend_avoids_the_data() {
        // Data high on the right: the legend must not go top-right.
        let rising = (0..50).map(|i| (f64::from(i), f64::from(i * i))).collect();
        let chart = LineChart {
            series: vec![series("rising", rising)],
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(400, 300);
        let has_edge = |r: Rect| pixels_in(&img, r).contains(&LEGEND_EDGE);
        assert!(has_edge(Rect::new(area.x0, area.y0, 120, 60)));
        assert!(!has_edge(Rect::new(area.x1 - 120, area.y0, 120, 60)));
    }

    /// The inside of cell (`r`, `c`) of a matrix whose top-left cell is `first`.
    fn cell_at(first: Rect, r: i64, c: i64) -> Rect {
        let cell = first.width();
        Rect::new(
            first.x0 + c * cell + 1,
            first.y0 + r * cell + 1,
            cell - 2,
            cell - 2,
        )
    }

    #[test]
    fn confusion_matrix_diagonal_is_darker() {
        let classes = ["walk", "run", "jump", "a rather long class name"].map(String::from);
        let counts = [[50, 2, 1, 0], [3, 40, 5, 2], [0, 1, 30, 9], [4, 0, 0, 12]].map(Vec::from);
        let (img, first) = confusion_matrix_with_cells("Confusion", &classes, &counts);
        let first = first.expect("cells");
        let mean = |r: Rect| {
            let pixels = pixels_in(&img, r);
            let sum: f64 = pixels.iter().flat_map(|p| p.0).map(f64::from).sum();
            sum / pixels.len() as f64
        };
        for (r, c) in (0..4).flat_map(|r| (0..4).map(move |c| (r, c))) {
            let lighter = mean(cell_at(first, r, r)) < mean(cell_at(first, r, c));
            assert!(
                r == c || lighter,
                "cell {r},{c} not lighter than the diagonal"
            );
        }
        // Dark cells carry white text, light ones dark text.
        let has = |r, f: fn(&u8) -> bool| pixels_in(&img, r).iter().any(|p| p.0.iter().all(f));
        assert!(has(cell_at(first, 0, 0), |&c| c > 240));
        assert!(has(cell_at(first, 0, 1), |&c| c < 15));
        let side = first.width() * 4;
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        assert!(w > first.x0 + side && h > first.y0 + side);
    }

    #[test]
    fn confusion_matrix_labels_every_class_and_count() {
        let classes = ["ходьба", "бег", "прыжок", "κάθομαι", "stand"].map(String::from);
        let count = |r: u64, c: u64| if r == c { 90 + r } else { r + c };
        let counts: Vec<Vec<u64>> = (0..5)
            .map(|r| (0..5).map(|c| count(r, c)).collect())
            .collect();
        let (img, first) = confusion_matrix_with_cells("5 classes", &classes, &counts);
        let first = first.expect("cells");
        let cell = first.width();
        assert!(cell >= 40, "cell {cell}");
        let inked = |r: Rect| pixels_in(&img, r).iter().any(|p| p[0] < 128);
        for i in 0..5 {
            // Every cell holds its count: more shades than its own.
            for j in 0..5 {
                let shades: HashSet<_> =
                    pixels_in(&img, cell_at(first, i, j)).into_iter().collect();
                assert!(shades.len() > 3, "cell {i},{j} has no number");
            }
            // Each row's name left of the matrix, and each column's above it.
            assert!(
                inked(Rect::new(0, first.y0 + i * cell, first.x0 - 1, cell)),
                "row {i}"
            );
            assert!(
                inked(Rect::new(first.x0 + i * cell, first.y0 - 40, cell, 38)),
                "column {i}"
            );
        }
    }

    #[test]
    fn confusion_matrix_handles_odd_shapes() {
        let (img, cells) = confusion_matrix_with_cells("Nothing", &[], &[]);
        assert!(cells.is_none() && img.width() > 0);
        // Ragged and missing rows, unnamed classes, huge counts.
        let ragged = [vec![u64::MAX, 1, 2], vec![], vec![7]];
        let img = confusion_matrix("Ragged", &["a".into()], &ragged);
        assert!(img.width() > 0 && img.height() > 0);
        // Many classes: no numbers, a bounded size.
        let n = 120;
        let classes: Vec<String> = (0..n).map(|i| format!("class {i}")).collect();
        let row = |r: u64| (0..n).map(|c| u64::from(r == c) * 10 + 1).collect();
        let counts: Vec<Vec<u64>> = (0..n).map(row).collect();
        let (img, first) = confusion_matrix_with_cells("Many", &classes, &counts);
        let first = first.expect("cells");
        let (w, h) = img.dimensions();
        assert!(first.width() < 10 && w < 1400 && h < 1400, "{w}x{h}");
        // With cells this small, a cell's pixels are all one shade: no numbers drawn.
        let shades: HashSet<_> = pixels_in(&img, cell_at(first, 5, 5)).into_iter().collect();
        assert_eq!(shades.len(), 1);
    }

    #[test]
    fn stacks_place_panels_on_white() {
        let (a, red) = (RgbImage::from_pixel(3, 2, BLACK_PX), Rgb([255, 0, 0]));
        let b = RgbImage::from_pixel(2, 4, red);
        let h = hstack(&[a.clone(), b.clone()]);
        assert_eq!(h.dimensions(), (5, 4));
        let corners = (*h.get_pixel(0, 0), *h.get_pixel(0, 3), *h.get_pixel(4, 3));
        assert_eq!(corners, (BLACK_PX, WHITE_PX, red));
        let v = vstack(&[a, b]);
        assert_eq!(v.dimensions(), (3, 6));
        let corners = (*v.get_pixel(2, 0), *v.get_pixel(2, 3), *v.get_pixel(1, 5));
        assert_eq!(corners, (BLACK_PX, WHITE_PX, red));
        assert_eq!(hstack(&[]).dimensions(), (0, 0));
        assert_eq!(vstack(&[]).dimensions(), (0, 0));
    }

    #[test]
    fn save_png_round_trips_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("plot-test-save-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested/deeper/chart.png");
        let img = two_series_chart().render(200, 120);
        save_png(&img, &path).expect("save");
        assert_eq!(image::open(&path).expect("open").to_rgb8(), img);
        // Overwrites in place, too.
        save_png(&img, &path).expect("save again");
        let listing = std::fs::read_dir(path.parent().expect("parent")).expect("list");
        let names: Vec<_> = listing.map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["chart.png"]);
        // A parent that is a file: the error names the path, and nothing is left behind.
        let blocked = path.join("inside.png");
        let err = format!(
            "{:#}",
            save_png(&img, &blocked).expect_err("parent is a file")
        );
        assert!(err.contains(&blocked.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Writes sample images for a look by eye:
    /// `cargo test -p pipeline plot::tests::write_samples -- --ignored`, then open
    /// $TMPDIR/plot-samples.
    #[test]
    #[ignore = "writes PNGs to look at by eye, asserts nothing; run with --ignored"]
    fn write_samples() {
        let dir = std::env::temp_dir().join("plot-samples");
        let save = |img: &RgbImage, name: &str| save_png(img, &dir.join(name)).expect("save");
        // The run timeline: surprise over the top classes, events marked on both.
        let t: Vec<f64> = (0..600).map(|i| f64::from(i) * 0.1).collect();
        let curve = |f: &dyn Fn(f64) -> f64| t.iter().map(|&x| (x, f(x))).collect();
        let events = [
            (12.3, "cut"),
            (31.0, "goal"),
            (33.5, "replay"),
            (52.0, "Ωμέγα / Привет"),
        ];
        let surprise = LineChart {
            title: "match.mp4: surprise".into(),
            x_label: "seconds".into(),
            y_label: "surprise".into(),
            series: vec![series("surprise", curve(&|x| 9.0 + 8.0 * (x * 0.7).sin()))],
            markers: events.iter().map(|(x, l)| (*x, l.to_string())).collect(),
            x_range: Some((0.0, 59.9)),
            bands: Vec::new(),
            ..LineChart::default()
        };
        let names = ["soccer ball", "stadium", "scoreboard", "футбол", "κερκίδα"];
        let wave = |k: f64| move |x: f64| (0.5 + 0.45 * ((x + k * 9.0) * 0.2).sin()).powi(3);
        let classes = LineChart {
            title: "top ImageNet classes (0 when outside a frame's top k)".into(),
            y_label: "probability".into(),
            series: (0..5)
                .map(|k| series(names[k], curve(&wave(k as f64))))
                .collect(),
            y_range: Some((0.0, 1.0)),
            ..surprise.clone()
        };
        let panels = [surprise.render(1000, 360), classes.render(1000, 360)];
        save(&vstack(&panels), "timeline.png");
        // Training curves side by side, a gap in one.
        let mut loss = two_series_chart();
        loss.series[1].points[40].1 = f64::NAN;
        let accuracy = LineChart {
            y_range: Some((-1.0, 1.0)),
            ..loss.clone()
        };
        save(
            &hstack(&[loss.render(640, 400), accuracy.render(640, 400)]),
            "training.png",
        );
        // Confusion matrices: 5 classes in three scripts, and 45.
        let names = ["walk", "run", "прыжок", "κάθομαι", "wave hands"].map(String::from);
        let count = |r: u64, c: u64| {
            if r == c {
                40 + r * 300
            } else {
                (r * 7 + c * 3) % 11
            }
        };
        let counts = |n| {
            (0..n)
                .map(|r| (0..n).map(|c| count(r, c)).collect())
                .collect()
        };
        let matrix: Vec<Vec<u64>> = counts(5);
        save(
            &confusion_matrix("Classify - val split", &names, &matrix),
            "confusion5.png",
        );
        let many: Vec<String> = (0..45).map(|i| format!("class_{i}")).collect();
        let matrix: Vec<Vec<u64>> = counts(45);
        save(
            &confusion_matrix("45 classes", &many, &matrix),
            "confusion45.png",
        );
        // A video frame labelled the way `run` does it.
        let mut frame = RgbImage::from_fn(320, 240, |x, y| Rgb([(x * 4 / 5) as u8, y as u8, 90]));
        let lines = [
            "12.40 s",
            "soccer ball 87%",
            "in 1.0s: goal 41%",
            "! cut: Привет Ωμέγα",
        ];
        for (i, line) in (0..).zip(lines) {
            let y = 3 + i * (text_height(1) as i32 + 3);
            draw_text(&mut frame, 3, y, line, Rgb([255, 255, 255]), 1);
        }
        draw_text(
            &mut frame,
            10,
            180,
            "scale 2: Ärger",
            Rgb([255, 220, 60]),
            2,
        );
        save(&frame, "frame.png");
    }
}
