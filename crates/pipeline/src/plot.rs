//! PNG charts drawn with nothing but the `image` crate: line charts over a timeline (with event
//! markers), confusion-matrix heat maps, panels stacked side by side, and a built-in bitmap font
//! for the text. Drawing clips at the image edges: no input makes rendering panic.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use image::codecs::png::PngEncoder;
use image::{Rgb, RgbImage};

// ---------------------------------------------------------------------------------------------
// Font

/// Glyph width in font pixels.
const GLYPH_W: u32 = 5;
/// Glyph height in font pixels: 7 rows down to the baseline and one descender row.
const GLYPH_H: u32 = 8;
/// Horizontal advance per character in font pixels (glyph plus one column of spacing).
const CELL_W: u32 = 6;
/// Line height in font pixels (glyph plus two rows of spacing).
const LINE_H: u32 = 10;

/// Printable ASCII 32..=126, one glyph per entry: 8 rows top to bottom, bit 4 the leftmost
/// column. Rows 0..=6 reach down to the baseline, row 7 holds descenders.
#[rustfmt::skip]
static FONT: [[u8; 8]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00], [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00], [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00], // ' ' '!' '"' '#'
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00], [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00], [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00], [0x04, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00], // '$' '%' '&' "'"
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00], [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00], [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00], [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00], // '(' ')' '*' '+'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x04, 0x08], [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00], [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00], // ',' '-' '.' '/'
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00], [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00], [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00], [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00], // '0' '1' '2' '3'
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00], [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00], [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00], [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00], // '4' '5' '6' '7'
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00], [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00], [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00], [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08, 0x00], // '8' '9' ':' ';'
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00], [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00], [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00], [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00], // '<' '=' '>' '?'
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00], [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00], [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00], [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00], // '@' 'A' 'B' 'C'
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00], [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00], [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00], [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00], // 'D' 'E' 'F' 'G'
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00], [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00], [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00], [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00], // 'H' 'I' 'J' 'K'
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00], [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00], [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00], [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00], // 'L' 'M' 'N' 'O'
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00], [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00], [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00], [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00], // 'P' 'Q' 'R' 'S'
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00], [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00], [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00], [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00], // 'T' 'U' 'V' 'W'
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00], [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04, 0x00], [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00], [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00], // 'X' 'Y' 'Z' '['
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00], [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00], [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // '\\' ']' '^' '_'
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00], [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00], [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00], [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00], // '`' 'a' 'b' 'c'
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00], [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00], [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00], [0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E], // 'd' 'e' 'f' 'g'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00], [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00], [0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C], [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00], // 'h' 'i' 'j' 'k'
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00], [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00], [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00], [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00], // 'l' 'm' 'n' 'o'
    [0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10], [0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01], [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00], [0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00], // 'p' 'q' 'r' 's'
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00], [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00], [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00], [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00], // 't' 'u' 'v' 'w'
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00], [0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00], [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00], // 'x' 'y' 'z' '{'
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00], [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00], [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00], // '|' '}' '~'
];

/// Drawn for characters outside printable ASCII: an empty box.
const UNKNOWN_GLYPH: [u8; 8] = [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F, 0x00];

fn glyph(c: char) -> &'static [u8; 8] {
    (c as usize)
        .checked_sub(32)
        .and_then(|i| FONT.get(i))
        .unwrap_or(&UNKNOWN_GLYPH)
}

/// Width in pixels of `text` drawn at `scale` (0 counts as 1): [`CELL_W`] pixels per character,
/// less the spacing column after the last one, so it equals the extent of a full-width last glyph.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u64;
    let w = n
        .saturating_mul(u64::from(CELL_W))
        .saturating_sub(1)
        .saturating_mul(u64::from(scale.max(1)));
    u32::try_from(w).unwrap_or(u32::MAX)
}

/// Height in pixels of a line of glyphs at `scale` (0 counts as 1), descenders included.
pub fn text_height(scale: u32) -> u32 {
    GLYPH_H.saturating_mul(scale.max(1))
}

/// Draws `text` with the built-in 5x7 bitmap font (6x10 cell, descenders below the baseline),
/// its top-left corner at (`x`, `y`), each font pixel a `scale` x `scale` square (0 counts as
/// 1). Characters outside printable ASCII draw as a box. Clips at the image edges. Returns the
/// width the text takes, [`text_width`], whether or not all of it was visible.
pub fn draw_text(
    img: &mut RgbImage,
    x: i32,
    y: i32,
    text: &str,
    color: Rgb<u8>,
    scale: u32,
) -> u32 {
    let s = i64::from(scale.max(1));
    let (x, y) = (i64::from(x), i64::from(y));
    let advance = i64::from(CELL_W) * s;
    if y < i64::from(img.height()) && y + i64::from(GLYPH_H) * s > 0 {
        let mut cx = x;
        for c in text.chars() {
            if cx >= i64::from(img.width()) {
                break;
            }
            if cx + i64::from(GLYPH_W) * s > 0 {
                draw_glyph(img, cx, y, glyph(c), color, s, false);
            }
            cx += advance;
        }
    }
    text_width(text, scale)
}

/// Draws `text` turned 90 degrees counter-clockwise, reading bottom to top from row `bottom`
/// upwards: it covers columns `x..x + text_height` and rows `bottom - text_width..bottom`.
fn draw_text_up(img: &mut RgbImage, x: i64, bottom: i64, text: &str, color: Rgb<u8>, scale: u32) {
    let s = i64::from(scale.max(1));
    let advance = i64::from(CELL_W) * s;
    if x >= i64::from(img.width()) || x + i64::from(GLYPH_H) * s <= 0 {
        return;
    }
    let mut along = 0i64;
    for c in text.chars() {
        let top_of_glyph = bottom - along - i64::from(GLYPH_W) * s;
        if top_of_glyph >= i64::from(img.height()) {
            along += advance;
            continue;
        }
        if bottom - along <= 0 {
            break;
        }
        draw_glyph(img, x, bottom - along, glyph(c), color, s, true);
        along += advance;
    }
}

/// One glyph, upright with its top-left at (`x`, `y`), or turned counter-clockwise with its
/// bottom-left at (`x`, `y`).
fn draw_glyph(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    rows: &[u8; 8],
    color: Rgb<u8>,
    s: i64,
    up: bool,
) {
    for (row, bits) in (0i64..).zip(rows.iter()) {
        for col in 0..i64::from(GLYPH_W) {
            if bits >> (i64::from(GLYPH_W) - 1 - col) & 1 == 0 {
                continue;
            }
            let (px, py) = if up {
                (x + row * s, y - (col + 1) * s)
            } else {
                (x + col * s, y + row * s)
            };
            fill_rect(img, Rect::new(px, py, s, s), color);
        }
    }
}

/// `text`, shortened with ".." at the end if it is wider than `max_width` at `scale`.
fn fit_text(text: &str, max_width: u32, scale: u32) -> String {
    if text_width(text, scale) <= max_width {
        return text.to_string();
    }
    let cell = u64::from(CELL_W) * u64::from(scale.max(1));
    let fits = ((u64::from(max_width) + u64::from(scale.max(1))) / cell) as usize;
    if fits <= 2 {
        return text.chars().take(fits).collect();
    }
    let mut out: String = text.chars().take(fits - 2).collect();
    out.push_str("..");
    out
}

// ---------------------------------------------------------------------------------------------
// Pixels

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const TEXT: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([232, 232, 232]);
const MARKER: Rgb<u8> = Rgb([110, 110, 110]);
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

/// A half-open pixel rectangle `x0..x1` x `y0..y1` (may reach outside the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn new(x: i64, y: i64, w: i64, h: i64) -> Self {
        Self {
            x0: x,
            y0: y,
            x1: x.saturating_add(w),
            y1: y.saturating_add(h),
        }
    }

    fn of(img: &RgbImage) -> Self {
        Self::new(0, 0, i64::from(img.width()), i64::from(img.height()))
    }

    fn intersect(self, o: Rect) -> Rect {
        Rect {
            x0: self.x0.max(o.x0),
            y0: self.y0.max(o.y0),
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
        }
    }

    fn width(self) -> i64 {
        (self.x1 - self.x0).max(0)
    }

    fn height(self) -> i64 {
        (self.y1 - self.y0).max(0)
    }

    fn contains(self, x: f64, y: f64) -> bool {
        x >= self.x0 as f64 && x < self.x1 as f64 && y >= self.y0 as f64 && y < self.y1 as f64
    }

    fn overlaps(self, o: Rect) -> bool {
        let i = self.intersect(o);
        i.x0 < i.x1 && i.y0 < i.y1
    }
}

fn fill_rect(img: &mut RgbImage, r: Rect, color: Rgb<u8>) {
    let r = r.intersect(Rect::of(img));
    for y in r.y0..r.y1 {
        for x in r.x0..r.x1 {
            // In bounds: r lies inside the image.
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, color);
    }
}

/// A one pixel outline just inside `r`.
fn outline(img: &mut RgbImage, r: Rect, color: Rgb<u8>) {
    fill_rect(img, Rect { y1: r.y0 + 1, ..r }, color);
    fill_rect(img, Rect { y0: r.y1 - 1, ..r }, color);
    fill_rect(img, Rect { x1: r.x0 + 1, ..r }, color);
    fill_rect(img, Rect { x0: r.x1 - 1, ..r }, color);
}

/// Pixel coordinates further out than this are clamped before any arithmetic on them.
const FAR: f64 = 1e7;

/// A line `width` pixels wide from (x0, y0) to (x1, y1), drawn only inside `clip`.
fn draw_line(
    img: &mut RgbImage,
    from: (f64, f64),
    to: (f64, f64),
    color: Rgb<u8>,
    width: i64,
    clip: Rect,
) {
    let c = |v: f64| v.clamp(-FAR, FAR);
    let (x0, y0, x1, y1) = (c(from.0), c(from.1), c(to.0), c(to.1));
    if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
        return;
    }
    // Liang-Barsky against the clip rectangle, so that a segment reaching far outside costs
    // no more than one that stays inside.
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    let bounds = [
        (-dx, x0 - clip.x0 as f64),
        (dx, (clip.x1 - 1) as f64 - x0),
        (-dy, y0 - clip.y0 as f64),
        (dy, (clip.y1 - 1) as f64 - y0),
    ];
    for (p, q) in bounds {
        if p == 0.0 {
            if q < 0.0 {
                return;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 {
        return;
    }
    let (mut x, mut y) = ((x0 + t0 * dx).round() as i64, (y0 + t0 * dy).round() as i64);
    let (xe, ye) = ((x0 + t1 * dx).round() as i64, (y0 + t1 * dy).round() as i64);
    // Bresenham, stamping a width x width square at each step.
    let (sx, sy) = (if xe >= x { 1 } else { -1 }, if ye >= y { 1 } else { -1 });
    let (adx, ady) = ((xe - x).abs(), -(ye - y).abs());
    let mut err = adx + ady;
    let off = (width - 1) / 2;
    loop {
        fill_rect(
            img,
            Rect::new(x - off, y - off, width, width).intersect(clip),
            color,
        );
        if x == xe && y == ye {
            break;
        }
        let e2 = 2 * err;
        if e2 >= ady {
            err += ady;
            x += sx;
        }
        if e2 <= adx {
            err += adx;
            y += sy;
        }
    }
}

/// A filled disc of `radius` around (x, y), drawn only inside `clip`.
fn draw_dot(img: &mut RgbImage, (x, y): (f64, f64), radius: i64, color: Rgb<u8>, clip: Rect) {
    if !clip.contains(x, y) {
        return;
    }
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            if dx * dx + dy * dy <= radius * radius + radius
                && clip.contains((cx + dx) as f64, (cy + dy) as f64)
            {
                put(img, cx + dx, cy + dy, color);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Axes

/// `lo..hi` made usable as an axis range: ordered, finite and of non-zero width.
fn sane_range(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    // Keep the span representable.
    let (mut lo, mut hi) = (lo.clamp(-1e300, 1e300), hi.clamp(-1e300, 1e300));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
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
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (Vec::new(), 0.0);
    }
    let exp = (span / 4.0).log10().floor();
    let mut best: Option<(f64, f64)> = None; // (distance from 5 ticks, step)
    for e in [exp - 1.0, exp, exp + 1.0] {
        let base = 10f64.powf(e);
        for m in [1.0, 2.0, 2.5, 5.0] {
            let step = m * base;
            if !(step.is_finite() && step > 0.0) {
                continue;
            }
            let count = (hi / step).floor() - (lo / step).ceil() + 1.0;
            let miss = (count - 5.0).abs();
            if best.is_none_or(|(b, _)| miss <= b) {
                best = Some((miss, step));
            }
        }
    }
    let Some((_, step)) = best else {
        return (Vec::new(), 0.0);
    };
    let first = (lo / step).ceil();
    let mut ticks: Vec<f64> = Vec::new();
    for i in 0..12 {
        let mut v = (first + f64::from(i)) * step;
        if v > hi + step * 1e-9 {
            break;
        }
        if v.abs() < step * 1e-9 {
            v = 0.0;
        }
        if ticks.last().is_none_or(|&last| v > last) {
            ticks.push(v);
        }
    }
    (ticks, step)
}

/// The fewest decimals (up to 15) that write `step` exactly enough.
fn decimals_for(step: f64) -> usize {
    let step = step.abs();
    (0..15)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() <= 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(15)
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Tick labels for `ticks` a `step` apart: plain decimals, or "2.5e-4" style when the step is
/// tiny or the values huge; trailing zeros dropped.
fn tick_labels(ticks: &[f64], step: f64) -> Vec<String> {
    let max_abs = ticks.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scientific = step < 1e-3 || max_abs >= 1e6;
    ticks
        .iter()
        .map(|&v| {
            if v == 0.0 {
                return "0".to_string();
            }
            if !scientific {
                let d = decimals_for(step);
                return trim_zeros(format!("{v:.d$}"));
            }
            let mut e = v.abs().log10().floor() as i32;
            let d = decimals_for(step / 10f64.powi(e)).min(6);
            let mut mantissa = format!("{:.d$}", v / 10f64.powi(e));
            if mantissa.trim_start_matches('-').starts_with("10") {
                e += 1;
                mantissa = format!("{:.d$}", v / 10f64.powi(e));
            }
            format!("{}e{e}", trim_zeros(mantissa))
        })
        .collect()
}

/// Maps data coordinates to pixel coordinates of a plot area.
#[derive(Debug, Clone, Copy)]
struct Axes {
    area: Rect,
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        let t = (x - self.x.0) / (self.x.1 - self.x.0);
        (self.area.x0 as f64 + t * (self.area.width() - 1) as f64).clamp(-FAR, FAR)
    }

    fn py(&self, y: f64) -> f64 {
        let t = (y - self.y.0) / (self.y.1 - self.y.0);
        ((self.area.y1 - 1) as f64 - t * (self.area.height() - 1) as f64).clamp(-FAR, FAR)
    }

    fn map(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (self.px(x), self.py(y))
    }
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
}

/// Font scale for chart text: 2 from 500 pixels on the short side.
fn chart_text_scale(width: u32, height: u32) -> u32 {
    if width.min(height) >= 500 { 2 } else { 1 }
}

impl LineChart {
    /// Finite points of all series.
    fn finite_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    /// The x range: [`LineChart::x_range`] if usable, else the data and the markers, edge
    /// to edge.
    fn x_range(&self) -> (f64, f64) {
        if let Some((lo, hi)) = self
            .x_range
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return (lo, hi);
        }
        let xs = self.finite_points().map(|(x, _)| x).chain(
            self.markers
                .iter()
                .map(|(x, _)| *x)
                .filter(|x| x.is_finite()),
        );
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        if lo > hi {
            (0.0, 1.0)
        } else {
            sane_range(lo, hi)
        }
    }

    /// The y range: [`LineChart::y_range`] if usable, else the data with 5% padding.
    fn y_range(&self) -> (f64, f64) {
        if let Some((lo, hi)) = self
            .y_range
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
        {
            return sane_range(lo, hi);
        }
        let (lo, hi) = self
            .finite_points()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| {
                (lo.min(y), hi.max(y))
            });
        if lo > hi {
            return (0.0, 1.0);
        }
        let (lo, hi) = sane_range(lo, hi);
        let pad = (hi - lo) * 0.05;
        sane_range(lo - pad, hi + pad)
    }

    /// Renders the chart as a `width` x `height` image.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        self.render_with_area(width, height).0
    }

    /// [`LineChart::render`], and where the plot area went.
    fn render_with_area(&self, width: u32, height: u32) -> (RgbImage, Rect) {
        let mut img = RgbImage::from_pixel(width, height, WHITE);
        let (w, h) = (i64::from(width), i64::from(height));
        let s = chart_text_scale(width, height);
        let title_s = s + 1;
        let (si, th) = (i64::from(s), i64::from(text_height(s)));
        let pad = 4 * si;
        let tick_len = 2 + 2 * si;

        let (xr, yr) = (self.x_range(), self.y_range());
        let (xticks, xstep) = nice_ticks(xr.0, xr.1);
        let (yticks, ystep) = nice_ticks(yr.0, yr.1);
        let xlabels = tick_labels(&xticks, xstep);
        let ylabels = tick_labels(&yticks, ystep);

        // Margins around the plot area.
        let top = if self.title.is_empty() {
            3 * pad
        } else {
            2 * pad + i64::from(text_height(title_s)) + pad
        };
        let ylabels_w = ylabels
            .iter()
            .map(|l| i64::from(text_width(l, s)))
            .max()
            .unwrap_or(0);
        let y_title_w = if self.y_label.is_empty() { 0 } else { th + pad };
        let left = pad + y_title_w + ylabels_w + pad + tick_len;
        let x_title_h = if self.x_label.is_empty() { 0 } else { th + pad };
        let bottom = tick_len + pad + th + pad + x_title_h + pad;
        let last_x_label_w = xlabels.last().map_or(0, |l| i64::from(text_width(l, s)));
        let right = (3 * pad).max(last_x_label_w / 2 + pad);
        let area = Rect {
            x0: left,
            y0: top,
            x1: (w - right).max(left + 1),
            y1: (h - bottom).max(top + 1),
        };
        let axes = Axes { area, x: xr, y: yr };

        // Grid and ticks.
        for &v in &xticks {
            let x = axes.px(v).round() as i64;
            fill_rect(
                &mut img,
                Rect {
                    x0: x,
                    x1: x + 1,
                    ..area
                },
                GRID,
            );
            fill_rect(&mut img, Rect::new(x, area.y1, 1, tick_len), BLACK);
        }
        for &v in &yticks {
            let y = axes.py(v).round() as i64;
            fill_rect(
                &mut img,
                Rect {
                    y0: y,
                    y1: y + 1,
                    ..area
                },
                GRID,
            );
            fill_rect(
                &mut img,
                Rect::new(area.x0 - tick_len - 1, y, tick_len, 1),
                BLACK,
            );
        }

        // Marker lines behind the data; their labels come later, on top.
        let mut markers: Vec<(f64, &str)> = self
            .markers
            .iter()
            .filter(|(x, _)| x.is_finite())
            .map(|(x, l)| (axes.px(*x), l.as_str()))
            .collect();
        markers.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(x, _) in &markers {
            let x = x.round() as i64;
            for y in area.y0..area.y1 {
                if (y - area.y0) % 9 < 5 {
                    put(&mut img, x, y, MARKER);
                }
            }
        }

        // The series.
        let line_w = si.max(2);
        for (i, series) in self.series.iter().enumerate() {
            let color = series_color(i);
            let pts = &series.points;
            let ok = |k: usize| {
                pts.get(k)
                    .is_some_and(|(x, y)| x.is_finite() && y.is_finite())
            };
            for k in 0..pts.len() {
                if !ok(k) {
                    continue;
                }
                let p = axes.map(pts[k]);
                if ok(k + 1) {
                    draw_line(&mut img, p, axes.map(pts[k + 1]), color, line_w, area);
                } else if k == 0 || !ok(k - 1) {
                    draw_dot(&mut img, p, 1 + line_w, color, area);
                }
            }
        }

        // Marker labels along the top, on a white patch, moved down a row where they would
        // overlap the one before.
        let mut placed: Vec<Rect> = Vec::new();
        let max_label_w = u32::try_from(area.width() / 3).unwrap_or(0);
        for &(x, label) in &markers {
            if label.is_empty() {
                continue;
            }
            let label = fit_text(label, max_label_w, s);
            let lw = i64::from(text_width(&label, s));
            let x = x.round() as i64;
            let lx = if x + 3 + lw + 2 <= area.x1 {
                x + 3
            } else {
                x - 3 - lw
            };
            let row_h = th + 4;
            let rows = ((area.height() - 4) / row_h).clamp(1, 4);
            let mut rect = Rect::new(lx - 1, area.y0 + 2, lw + 2, th + 2);
            for row in 0..rows {
                rect = Rect::new(lx - 1, area.y0 + 2 + row * row_h, lw + 2, th + 2);
                if !placed.iter().any(|r| r.overlaps(rect)) {
                    break;
                }
            }
            fill_rect(&mut img, rect.intersect(area), WHITE);
            draw_text(
                &mut img,
                clamp_i32(lx),
                clamp_i32(rect.y0 + 1),
                &label,
                MARKER,
                s,
            );
            placed.push(rect);
        }

        self.draw_legend(&mut img, &axes, s, &placed);

        // Frame, tick labels, axis titles and title, around the plot area.
        outline(
            &mut img,
            Rect {
                x0: area.x0 - 1,
                y0: area.y0 - 1,
                x1: area.x1 + 1,
                y1: area.y1 + 1,
            },
            BLACK,
        );
        let mut free_from = i64::MIN;
        for (&v, label) in xticks.iter().zip(&xlabels) {
            let lw = i64::from(text_width(label, s));
            let lx = axes.px(v).round() as i64 - lw / 2;
            if lx < free_from {
                continue; // would overlap the label before
            }
            draw_text(
                &mut img,
                clamp_i32(lx),
                clamp_i32(area.y1 + tick_len + pad),
                label,
                TEXT,
                s,
            );
            free_from = lx + lw + 2 * pad;
        }
        for (&v, label) in yticks.iter().zip(&ylabels) {
            let lw = i64::from(text_width(label, s));
            let y = axes.py(v).round() as i64 - (7 * si) / 2;
            draw_text(
                &mut img,
                clamp_i32(area.x0 - tick_len - pad - lw),
                clamp_i32(y),
                label,
                TEXT,
                s,
            );
        }
        if !self.x_label.is_empty() {
            let label = fit_text(&self.x_label, u32::try_from(w).unwrap_or(0), s);
            let lw = i64::from(text_width(&label, s));
            let lx = (area.x0 + area.x1) / 2 - lw / 2;
            draw_text(
                &mut img,
                clamp_i32(lx),
                clamp_i32(area.y1 + tick_len + pad + th + pad + pad),
                &label,
                TEXT,
                s,
            );
        }
        if !self.y_label.is_empty() {
            let label = fit_text(&self.y_label, u32::try_from(h).unwrap_or(0), s);
            let lw = i64::from(text_width(&label, s));
            draw_text_up(
                &mut img,
                pad,
                (area.y0 + area.y1) / 2 + lw / 2,
                &label,
                TEXT,
                s,
            );
        }
        if !self.title.is_empty() {
            let title = fit_text(
                &self.title,
                u32::try_from(w - 2 * pad).unwrap_or(0),
                title_s,
            );
            let tw = i64::from(text_width(&title, title_s));
            draw_text(
                &mut img,
                clamp_i32(w / 2 - tw / 2),
                clamp_i32(2 * pad),
                &title,
                BLACK,
                title_s,
            );
        }
        (img, area)
    }

    /// The legend, in the corner of the plot area that hides the least data.
    fn draw_legend(&self, img: &mut RgbImage, axes: &Axes, s: u32, avoid: &[Rect]) {
        let area = axes.area;
        let entries: Vec<(usize, &str)> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, series)| !series.name.is_empty())
            .map(|(i, series)| (i, series.name.as_str()))
            .collect();
        if entries.is_empty() {
            return;
        }
        let si = i64::from(s);
        let (pad, row_h, sample) = (4 * si, i64::from(LINE_H) * si, 16 * si);
        let max_rows = ((area.height() - 2 * pad) / row_h).max(0) as usize;
        if max_rows == 0 {
            return;
        }
        let mut rows: Vec<(Option<usize>, String)> = Vec::new();
        let name_w = u32::try_from((area.width() / 2 - sample - 3 * pad).max(0)).unwrap_or(0);
        let shown = if entries.len() > max_rows {
            max_rows - 1
        } else {
            entries.len()
        };
        for &(i, name) in entries.iter().take(shown) {
            rows.push((Some(i), fit_text(name, name_w, s)));
        }
        if shown < entries.len() {
            rows.push((
                None,
                fit_text(&format!("(+{} more)", entries.len() - shown), name_w, s),
            ));
        }
        let text_w = rows
            .iter()
            .map(|(_, t)| i64::from(text_width(t, s)))
            .max()
            .unwrap_or(0);
        let (lw, lh) = (
            pad + sample + pad + text_w + pad,
            pad + rows.len() as i64 * row_h - 2 * si + pad,
        );
        let m = pad;
        let corners = [
            Rect::new(area.x1 - m - lw, area.y0 + m, lw, lh),
            Rect::new(area.x0 + m, area.y0 + m, lw, lh),
            Rect::new(area.x1 - m - lw, area.y1 - m - lh, lw, lh),
            Rect::new(area.x0 + m, area.y1 - m - lh, lw, lh),
        ];
        // Score each corner by the data samples (points and points along segments) and
        // marker labels it would cover.
        let mut cost = [0usize; 4];
        for series in &self.series {
            let mut prev: Option<(f64, f64)> = None;
            for &p in &series.points {
                let here = (p.0.is_finite() && p.1.is_finite()).then(|| axes.map(p));
                if let Some(q) = here {
                    let a = prev.unwrap_or(q);
                    for k in 0..8 {
                        let t = f64::from(k) / 8.0;
                        let x = a.0 + (q.0 - a.0) * t;
                        let y = a.1 + (q.1 - a.1) * t;
                        for (c, r) in cost.iter_mut().zip(&corners) {
                            *c += usize::from(r.contains(x, y));
                        }
                    }
                }
                prev = here;
            }
        }
        for (c, r) in cost.iter_mut().zip(&corners) {
            *c += 1000 * avoid.iter().filter(|a| a.overlaps(*r)).count();
        }
        let best = (0..4).min_by_key(|&k| (cost[k], k)).unwrap_or(0);
        let r = corners[best];
        fill_rect(img, r.intersect(area), WHITE);
        outline(img, r.intersect(area), LEGEND_EDGE);
        for (k, (series, text)) in rows.iter().enumerate() {
            let y = r.y0 + pad + k as i64 * row_h;
            if let Some(i) = *series {
                let mid = (y + (7 * si) / 2) as f64;
                let x0 = (r.x0 + pad) as f64;
                draw_line(
                    img,
                    (x0, mid),
                    (x0 + sample as f64, mid),
                    series_color(i),
                    si.max(2),
                    area,
                );
            }
            draw_text(
                img,
                clamp_i32(r.x0 + pad + sample + pad),
                clamp_i32(y),
                text,
                TEXT,
                s,
            );
        }
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
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
    let (a, b, u) = if t < 0.5 {
        (STOPS[0], STOPS[1], t * 2.0)
    } else {
        (STOPS[1], STOPS[2], t * 2.0 - 1.0)
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
    let title = if n < n_all {
        format!("{title} (first {n} of {n_all} classes)")
    } else {
        title.to_string()
    };
    let (title_s, pad) = (2u32, 8i64);
    let title_w = i64::from(text_width(&title, title_s));
    let title_h = 2 * pad + i64::from(text_height(title_s));
    if n == 0 {
        let mut img = RgbImage::from_pixel(
            u32::try_from((title_w + 2 * pad).max(200)).unwrap_or(u32::MAX),
            u32::try_from(title_h + 3 * pad).unwrap_or(u32::MAX),
            WHITE,
        );
        draw_text(
            &mut img,
            clamp_i32(pad),
            clamp_i32(2 * pad),
            &title,
            BLACK,
            title_s,
        );
        draw_text(
            &mut img,
            clamp_i32(pad),
            clamp_i32(title_h),
            "(no classes)",
            TEXT,
            1,
        );
        return (img, None);
    }
    let numbers = n <= MAX_NUMBERED_CLASSES;
    let cell: i64 = if numbers {
        (720 / n as i64).clamp(28, 64)
    } else {
        (960 / n as i64).clamp(1, 24)
    };
    let ls: u32 = if cell >= 40 { 2 } else { 1 };
    let (lsi, lth) = (i64::from(ls), i64::from(text_height(ls)));
    let count = |r: usize, c: usize| {
        counts
            .get(r)
            .and_then(|row| row.get(c))
            .copied()
            .unwrap_or(0)
    };
    let names: Vec<String> = (0..n)
        .map(|i| {
            fit_text(
                classes.get(i).map_or(&i.to_string(), |c| c),
                20 * CELL_W * ls,
                ls,
            )
        })
        .collect();
    let name_w = names
        .iter()
        .map(|nm| i64::from(text_width(nm, ls)))
        .max()
        .unwrap_or(0);
    // Column names go across when all fit a cell, else upwards.
    let across = names
        .iter()
        .all(|nm| i64::from(text_width(nm, ls)) <= cell - 4);
    let col_h = if across { lth } else { name_w };
    // Label every stride-th class where cells are thinner than a line of text.
    let stride = ((i64::from(LINE_H) * lsi + cell - 1) / cell).max(1) as usize;

    let axis_h = lth + pad; // "Predicted" above the column names
    let axis_w = lth + pad; // "True" left of the row names
    let mx = pad + axis_w + name_w + pad;
    let my = title_h + axis_h + col_h + pad;
    let side = cell * n as i64;
    let width = (mx + side + 2 * pad).max(title_w + 2 * pad);
    let height = my + side + 2 * pad;
    let mut img = RgbImage::from_pixel(
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
        WHITE,
    );

    draw_text(
        &mut img,
        clamp_i32(width / 2 - title_w / 2),
        clamp_i32(pad),
        &title,
        BLACK,
        title_s,
    );
    let pred_w = i64::from(text_width("Predicted", ls));
    draw_text(
        &mut img,
        clamp_i32(mx + side / 2 - pred_w / 2),
        clamp_i32(title_h),
        "Predicted",
        BLACK,
        ls,
    );
    let true_w = i64::from(text_width("True", ls));
    draw_text_up(&mut img, pad, my + side / 2 + true_w / 2, "True", BLACK, ls);

    let grid = cell >= 6;
    for r in 0..n {
        let row_total: u64 = (0..n).map(|c| count(r, c)).fold(0u64, u64::saturating_add);
        for c in 0..n {
            let k = count(r, c);
            let share = if row_total == 0 {
                0.0
            } else {
                k as f64 / row_total as f64
            };
            let cell_rect = Rect::new(mx + c as i64 * cell, my + r as i64 * cell, cell, cell);
            fill_rect(&mut img, cell_rect, blues(share));
            if !numbers {
                continue;
            }
            let ink = if share > 0.5 { WHITE } else { BLACK };
            let mut text = k.to_string();
            let mut ts = ls;
            if i64::from(text_width(&text, ts)) > cell - 4 {
                ts = 1;
            }
            if i64::from(text_width(&text, ts)) > cell - 4 {
                text = short_count(k);
            }
            let tw = i64::from(text_width(&text, ts));
            if tw <= cell - 2 {
                let tx = cell_rect.x0 + (cell - tw) / 2;
                let ty = cell_rect.y0 + (cell - 7 * i64::from(ts)) / 2;
                draw_text(&mut img, clamp_i32(tx), clamp_i32(ty), &text, ink, ts);
            }
        }
    }
    if grid {
        for k in 1..n as i64 {
            let at = k * cell;
            fill_rect(&mut img, Rect::new(mx + at, my, 1, side), WHITE);
            fill_rect(&mut img, Rect::new(mx, my + at, side, 1), WHITE);
        }
    }
    outline(
        &mut img,
        Rect::new(mx - 1, my - 1, side + 2, side + 2),
        LEGEND_EDGE,
    );

    for (i, name) in names.iter().enumerate().step_by(stride) {
        let nw = i64::from(text_width(name, ls));
        let centre = i as i64 * cell + cell / 2;
        // Row names right-aligned against the matrix.
        draw_text(
            &mut img,
            clamp_i32(mx - pad - nw),
            clamp_i32(my + centre - (7 * lsi) / 2),
            name,
            TEXT,
            ls,
        );
        if across {
            draw_text(
                &mut img,
                clamp_i32(mx + centre - nw / 2),
                clamp_i32(my - pad - lth),
                name,
                TEXT,
                ls,
            );
        } else {
            draw_text_up(
                &mut img,
                mx + centre - (7 * lsi) / 2,
                my - pad,
                name,
                TEXT,
                ls,
            );
        }
    }
    (img, Some(Rect::new(mx, my, cell, cell)))
}

// ---------------------------------------------------------------------------------------------
// Panels and files

/// Panels side by side, top-aligned, on white where their heights differ.
pub fn hstack(images: &[RgbImage]) -> RgbImage {
    let width: u64 = images.iter().map(|i| u64::from(i.width())).sum();
    let height = images.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(u32::try_from(width).unwrap_or(u32::MAX), height, WHITE);
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
    let mut out = RgbImage::from_pixel(width, u32::try_from(height).unwrap_or(u32::MAX), WHITE);
    let mut y = 0i64;
    for im in images {
        image::imageops::replace(&mut out, im, 0, y);
        y += i64::from(im.height());
    }
    out
}

/// A sibling temporary name for `path`, unique to this process and call.
fn temp_sibling(path: &Path) -> Option<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name()?);
    name.push(format!(
        ".plot-{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Some(path.with_file_name(name))
}

/// Writes PNG atomically: to a temporary sibling name then rename; creates parent dirs. Returns
/// anyhow::Result<()> with the path in the error context.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let write = || -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let Some(tmp) = temp_sibling(path) else {
            bail!("not a file name");
        };
        let result = (|| -> Result<()> {
            let mut out = BufWriter::new(File::create(&tmp)?);
            img.write_with_encoder(PngEncoder::new(&mut out))?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    };
    write().with_context(|| format!("writing PNG {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_ink(p: &Rgb<u8>) -> bool {
        *p != WHITE
    }

    /// Bounding box (x0, y0, x1, y1 inclusive) of the non-white pixels.
    fn ink_box(img: &RgbImage) -> Option<(u32, u32, u32, u32)> {
        img.enumerate_pixels()
            .filter(|(_, _, p)| is_ink(p))
            .fold(None, |b, (x, y, _)| {
                Some(
                    b.map_or((x, y, x, y), |(x0, y0, x1, y1): (u32, u32, u32, u32)| {
                        (x0.min(x), y0.min(y), x1.max(x), y1.max(y))
                    }),
                )
            })
    }

    fn luminance(p: &Rgb<u8>) -> f64 {
        0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
    }

    fn mean_luminance(img: &RgbImage, r: Rect) -> f64 {
        let r = r.intersect(Rect::of(img));
        let mut sum = 0.0;
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                sum += luminance(img.get_pixel(x as u32, y as u32));
            }
        }
        sum / (r.width() * r.height()) as f64
    }

    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plot-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn glyphs_are_distinct_and_only_space_is_blank() {
        for a in 32u8..=126 {
            let ga = glyph(char::from(a));
            assert_eq!(
                ga.iter().any(|&r| r != 0),
                a != b' ',
                "glyph {:?}",
                char::from(a)
            );
            assert!(
                ga.iter().all(|&r| r < 32),
                "glyph {:?} is wider than 5",
                char::from(a)
            );
            for b in a + 1..=126 {
                assert_ne!(
                    ga,
                    glyph(char::from(b)),
                    "{:?} and {:?}",
                    char::from(a),
                    char::from(b)
                );
            }
        }
        assert_eq!(glyph('\u{e9}'), &UNKNOWN_GLYPH);
        assert_eq!(glyph('\n'), &UNKNOWN_GLYPH);
    }

    #[test]
    fn text_width_matches_drawn_extent() {
        for scale in 1..=3 {
            for text in ["MW", "Hello, World! 123", "q"] {
                let mut img = RgbImage::from_pixel(400, 60, WHITE);
                let drawn = draw_text(&mut img, 3, 4, text, BLACK, scale);
                assert_eq!(drawn, text_width(text, scale));
                let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
                assert_eq!(x0, 3, "{text} at {scale}");
                if text != "q" {
                    assert_eq!(x1 - x0 + 1, text_width(text, scale), "{text} at {scale}");
                }
                assert!(y0 >= 4 && y1 - y0 < text_height(scale), "{text} at {scale}");
            }
        }
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("ab", 0), text_width("ab", 1));
        assert_eq!(text_width("\u{e9}t\u{e9}", 1), text_width("abc", 1));
    }

    #[test]
    fn text_clips_at_every_edge_without_panicking() {
        let mut img = RgbImage::from_pixel(20, 10, WHITE);
        for (x, y) in [
            (-7, -3),
            (15, 5),
            (-100, 0),
            (0, 9),
            (i32::MIN, i32::MIN),
            (i32::MAX, i32::MAX),
        ] {
            for scale in [0, 1, 3, u32::MAX] {
                draw_text(&mut img, x, y, "Clip me ~ {}", BLACK, scale);
                draw_text_up(
                    &mut img,
                    i64::from(x),
                    i64::from(y),
                    "Clip me",
                    BLACK,
                    scale,
                );
            }
        }
        // Half off the left edge: the visible part is the right-hand side of the text.
        let mut img = RgbImage::from_pixel(20, 10, WHITE);
        draw_text(&mut img, -3, 0, "H", BLACK, 1);
        assert!(is_ink(img.get_pixel(1, 3)) && !is_ink(img.get_pixel(2, 0)));
        let mut empty = RgbImage::new(0, 0);
        assert_eq!(
            draw_text(&mut empty, 0, 0, "abc", BLACK, 1),
            text_width("abc", 1)
        );
    }

    #[test]
    fn upward_text_occupies_the_rotated_box() {
        let mut img = RgbImage::from_pixel(40, 100, WHITE);
        draw_text_up(&mut img, 5, 90, "WM", BLACK, 2);
        let (x0, y0, x1, y1) = ink_box(&img).expect("ink");
        assert!(x0 >= 5 && x1 < 5 + text_height(2));
        assert_eq!((y0, y1), (90 - text_width("WM", 2), 89));
    }

    #[test]
    fn fit_text_shortens_to_the_width() {
        assert_eq!(fit_text("short", 100, 1), "short");
        let long = fit_text("a rather long class name", 60, 1);
        assert!(text_width(&long, 1) <= 60 && long.ends_with(".."), "{long}");
        assert!(fit_text("abc", 0, 1).is_empty());
    }

    #[test]
    fn ticks_are_nice_and_labelled_compactly() {
        let labels = |lo, hi| {
            let (t, s) = nice_ticks(lo, hi);
            tick_labels(&t, s)
        };
        assert_eq!(labels(0.0, 1.0), ["0", "0.25", "0.5", "0.75", "1"]);
        assert_eq!(labels(-1.0, 1.0), ["-1", "-0.5", "0", "0.5", "1"]);
        assert_eq!(labels(0.0, 0.002), ["0", "5e-4", "1e-3", "1.5e-3", "2e-3"]);
        assert_eq!(labels(0.0, 4e6), ["0", "1e6", "2e6", "3e6", "4e6"]);
        assert_eq!(labels(0.03, 117.0), ["20", "40", "60", "80", "100"]);
        for (lo, hi) in [
            (0.0, 7.0),
            (-3.3, 12.9),
            (1e-9, 3e-9),
            (100.0, 100.5),
            (-1e300, 1e300),
            (0.1, 0.7),
        ] {
            let (t, step) = nice_ticks(lo, hi);
            assert!((3..=7).contains(&t.len()), "{lo}..{hi}: {t:?}");
            assert!(
                t.iter()
                    .all(|&v| v >= lo - step * 1e-6 && v <= hi + step * 1e-6),
                "{lo}..{hi}: {t:?}"
            );
            let m = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 2.5, 5.0].iter().any(|n| (m - n).abs() < 1e-9),
                "step {step}"
            );
        }
        let mut fours_to_sixes = 0;
        for k in 1..200 {
            let (t, _) = nice_ticks(0.0, f64::from(k) * 0.37);
            fours_to_sixes += usize::from((4..=6).contains(&t.len()));
        }
        assert!(
            fours_to_sixes >= 190,
            "{fours_to_sixes} of 199 ranges with 4-6 ticks"
        );
        assert!(nice_ticks(1.0, 1.0).0.is_empty() && nice_ticks(f64::NAN, 1.0).0.is_empty());
    }

    #[test]
    fn ranges_are_made_usable() {
        assert_eq!(sane_range(2.0, 1.0), (1.0, 2.0));
        let (lo, hi) = sane_range(5.0, 5.0);
        assert!(lo < 5.0 && hi > 5.0);
        let (lo, hi) = sane_range(0.0, 0.0);
        assert!(lo < 0.0 && hi > 0.0);
        assert_eq!(sane_range(f64::NAN, 1.0), (0.0, 1.0));
        let (lo, hi) = sane_range(-f64::MAX, f64::MAX);
        assert!((hi - lo).is_finite());
    }

    fn two_series_chart() -> LineChart {
        let xs = (0..100).map(|i| f64::from(i) * 0.1);
        LineChart {
            title: "Two series".into(),
            x_label: "time (s)".into(),
            y_label: "score".into(),
            series: vec![
                Series {
                    name: "sin".into(),
                    points: xs.clone().map(|x| (x, x.sin())).collect(),
                },
                Series {
                    name: "cos".into(),
                    points: xs.map(|x| (x, x.cos())).collect(),
                },
            ],
            markers: vec![(2.0, "cut".into()), (7.5, "goal".into())],
            y_range: None,
            x_range: None,
        }
    }

    #[test]
    fn series_pixels_appear_inside_the_plot_area() {
        let chart = two_series_chart();
        let (img, area) = chart.render_with_area(640, 400);
        assert_eq!(img.dimensions(), (640, 400));
        assert!(
            area.x0 > 20 && area.y0 > 10 && area.x1 < 640 && area.y1 < 380,
            "{area:?}"
        );
        for color in [PALETTE[0], PALETTE[1]] {
            let mut inside = 0;
            for (x, y, p) in img.enumerate_pixels() {
                if *p == color {
                    assert!(
                        area.contains(f64::from(x), f64::from(y)),
                        "{color:?} at {x},{y}"
                    );
                    inside += 1;
                }
            }
            assert!(inside > 500, "{color:?}: {inside} pixels");
        }
        assert!(!img.pixels().any(|p| *p == PALETTE[2]));
    }

    #[test]
    fn data_lands_where_the_axes_say() {
        let chart = LineChart {
            series: vec![Series {
                name: String::new(),
                points: vec![(0.0, 0.5), (10.0, 0.5)],
            }],
            y_range: Some((0.0, 1.0)),
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        let mid = (area.y0 + area.y1 - 1) as f64 / 2.0;
        let rows: Vec<u32> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == PALETTE[0])
            .map(|(_, y, _)| y)
            .collect();
        assert!(!rows.is_empty());
        assert!(
            rows.iter().all(|&y| (f64::from(y) - mid).abs() <= 2.0),
            "{mid} vs {rows:?}"
        );
        // A fixed range clips data outside it to the plot area.
        let chart = LineChart {
            series: vec![Series {
                name: "big".into(),
                points: vec![(0.0, -1e9), (1.0, 1e9), (2.0, f64::MAX)],
            }],
            y_range: Some((0.0, 1.0)),
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        let n = img
            .enumerate_pixels()
            .filter(|(_, _, p)| **p == PALETTE[0])
            .inspect(|(x, y, _)| {
                assert!(area.contains(f64::from(*x), f64::from(*y)));
            });
        assert!(n.count() > 0);
    }

    #[test]
    fn awkward_data_never_panics() {
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let cases: Vec<Vec<(f64, f64)>> = vec![
            vec![],
            vec![(1.0, 2.0)],
            vec![(nan, nan), (inf, 1.0), (1.0, -inf)],
            vec![(0.0, 3.0), (1.0, 3.0), (2.0, 3.0)],
            vec![(5.0, 1.0), (5.0, 2.0), (5.0, nan), (5.0, 0.5)],
            vec![(0.0, 1.0), (1.0, nan), (2.0, 1.5), (3.0, 2.0)],
            vec![
                (-f64::MAX, f64::MAX),
                (f64::MAX, -f64::MAX),
                (0.0, f64::MIN_POSITIVE),
            ],
            vec![(1e15, 1.0), (1e15 + 0.25, 1.0 + 1e-15)],
            vec![(0.0, 1e-320), (1.0, 2e-320)],
        ];
        let ranges = [
            None,
            Some((nan, 1.0)),
            Some((2.0, 2.0)),
            Some((3.0, -3.0)),
            Some((0.0, inf)),
        ];
        for points in &cases {
            for y_range in ranges {
                let chart = LineChart {
                    title: "\u{1F600} edge \t cases".into(),
                    x_label: "x".repeat(500),
                    y_label: "y".into(),
                    series: vec![
                        Series {
                            name: "data".into(),
                            points: points.clone(),
                        },
                        Series {
                            name: "empty".into(),
                            points: vec![],
                        },
                    ],
                    markers: vec![
                        (nan, "nan".into()),
                        (1.0, "m".repeat(300)),
                        (1.0, "same".into()),
                        (inf, String::new()),
                    ],
                    y_range,
                    x_range: y_range,
                };
                for (w, h) in [(0, 0), (1, 1), (7, 300), (40, 30), (320, 200), (900, 600)] {
                    let img = chart.render(w, h);
                    assert_eq!(img.dimensions(), (w, h));
                }
            }
        }
        assert_eq!(LineChart::default().render(100, 80).dimensions(), (100, 80));
    }

    #[test]
    fn a_lone_point_draws_as_a_dot() {
        let chart = LineChart {
            series: vec![Series {
                name: "one".into(),
                points: vec![(f64::NAN, 0.0), (3.0, 4.0), (4.0, f64::NAN)],
            }],
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(300, 200);
        let dot: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(x, y, p)| **p == PALETTE[0] && area.contains(f64::from(*x), f64::from(*y)))
            .map(|(x, y, _)| (x, y))
            .collect();
        // Legend sample aside, the dot sits in the middle of the plot (x and y ranges both
        // centre on the single point).
        let cx = (area.x0 + area.x1) as f64 / 2.0;
        let cy = (area.y0 + area.y1) as f64 / 2.0;
        assert!(
            dot.iter()
                .filter(
                    |(x, y)| (f64::from(*x) - cx).abs() < 5.0 && (f64::from(*y) - cy).abs() < 5.0
                )
                .count()
                >= 9
        );
    }

    #[test]
    fn legend_avoids_the_data() {
        // Data high on the right: the legend must not go top-right.
        let chart = LineChart {
            series: vec![Series {
                name: "rising".into(),
                points: (0..50).map(|i| (f64::from(i), f64::from(i * i))).collect(),
            }],
            ..LineChart::default()
        };
        let (img, area) = chart.render_with_area(400, 300);
        let top_right = Rect::new(area.x1 - 120, area.y0, 120, 60);
        let top_left = Rect::new(area.x0, area.y0, 120, 60);
        let has_legend_edge = |r: Rect| {
            let r = r.intersect(Rect::of(&img));
            (r.y0..r.y1)
                .any(|y| (r.x0..r.x1).any(|x| *img.get_pixel(x as u32, y as u32) == LEGEND_EDGE))
        };
        assert!(has_legend_edge(top_left) && !has_legend_edge(top_right));
    }

    #[test]
    fn confusion_matrix_diagonal_is_darker() {
        let classes: Vec<String> = ["walk", "run", "jump", "a rather long class name"]
            .map(String::from)
            .to_vec();
        let counts = vec![
            vec![50, 2, 1, 0],
            vec![3, 40, 5, 2],
            vec![0, 1, 30, 9],
            vec![4, 0, 0, 12],
        ];
        let (img, first) = confusion_matrix_with_cells("Confusion", &classes, &counts);
        let first = first.expect("cells");
        let cell = first.width();
        let at = |r: i64, c: i64| {
            Rect::new(
                first.x0 + c * cell + 1,
                first.y0 + r * cell + 1,
                cell - 2,
                cell - 2,
            )
        };
        for r in 0..4 {
            for c in 0..4 {
                if r != c {
                    assert!(
                        mean_luminance(&img, at(r, r)) < mean_luminance(&img, at(r, c)),
                        "cell {r},{c} not lighter than the diagonal"
                    );
                }
            }
        }
        // Dark cells carry white text, light ones dark text.
        let inside = |r: Rect, color: Rgb<u8>| {
            (r.y0..r.y1).any(|y| (r.x0..r.x1).any(|x| *img.get_pixel(x as u32, y as u32) == color))
        };
        assert!(inside(at(0, 0), WHITE));
        assert!(inside(at(0, 1), BLACK));
        assert!(
            img.width() as i64 >= first.x0 + 4 * cell && img.height() as i64 >= first.y0 + 4 * cell
        );
    }

    #[test]
    fn confusion_matrix_handles_odd_shapes() {
        let (img, cells) = confusion_matrix_with_cells("Nothing", &[], &[]);
        assert!(cells.is_none() && img.width() > 0);
        // Ragged and missing rows, unnamed classes, huge counts.
        let img = confusion_matrix(
            "Ragged",
            &["a".to_string()],
            &[vec![u64::MAX, 1, 2], vec![], vec![7]],
        );
        assert!(img.width() > 0 && img.height() > 0);
        // Many classes: no numbers, a bounded size.
        let n = 120;
        let classes: Vec<String> = (0..n).map(|i| format!("class {i}")).collect();
        let counts: Vec<Vec<u64>> = (0..n)
            .map(|r| (0..n).map(|c| u64::from(r == c) * 10 + 1).collect())
            .collect();
        let (img, first) = confusion_matrix_with_cells("Many", &classes, &counts);
        let first = first.expect("cells");
        assert!(
            first.width() < 10 && img.width() < 1400 && img.height() < 1400,
            "{:?}",
            img.dimensions()
        );
        // With cells this small, a cell's pixels are all one shade: no numbers drawn.
        let cell = first.width();
        let r = Rect::new(
            first.x0 + 5 * cell + 1,
            first.y0 + 5 * cell + 1,
            cell - 1,
            cell - 1,
        );
        let shades: std::collections::HashSet<_> = (r.y0..r.y1)
            .flat_map(|y| (r.x0..r.x1).map(move |x| (x, y)))
            .map(|(x, y)| *img.get_pixel(x as u32, y as u32))
            .collect();
        assert_eq!(shades.len(), 1);
    }

    #[test]
    fn stacks_place_panels_on_white() {
        let a = RgbImage::from_pixel(3, 2, BLACK);
        let b = RgbImage::from_pixel(2, 4, Rgb([255, 0, 0]));
        let h = hstack(&[a.clone(), b.clone()]);
        assert_eq!(h.dimensions(), (5, 4));
        assert_eq!(
            (*h.get_pixel(0, 0), *h.get_pixel(0, 3), *h.get_pixel(4, 3)),
            (BLACK, WHITE, Rgb([255, 0, 0]))
        );
        let v = vstack(&[a, b]);
        assert_eq!(v.dimensions(), (3, 6));
        assert_eq!(
            (*v.get_pixel(2, 0), *v.get_pixel(2, 3), *v.get_pixel(1, 5)),
            (BLACK, WHITE, Rgb([255, 0, 0]))
        );
        assert_eq!(hstack(&[]).dimensions(), (0, 0));
        assert_eq!(vstack(&[]).dimensions(), (0, 0));
    }

    #[test]
    fn save_png_round_trips_and_leaves_no_temp_file() {
        let dir = test_dir("save");
        let path = dir.join("nested/deeper/chart.png");
        let img = two_series_chart().render(200, 120);
        save_png(&img, &path).expect("save");
        let back = image::open(&path).expect("open").to_rgb8();
        assert_eq!(back, img);
        // Overwrites in place, too.
        save_png(&img, &path).expect("save again");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("chart.png")]);
        // A parent that is a file: the error names the path, and nothing is left behind.
        let blocked = path.join("inside.png");
        let err = save_png(&img, &blocked).expect_err("parent is a file");
        assert!(
            format!("{err:#}").contains(&blocked.display().to_string()),
            "{err:#}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// Writes sample images for a look by eye: `cargo test --workspace --bin pipeline
    /// plot::tests::write_samples -- --ignored`, then open $TMPDIR/plot-samples.
    #[test]
    #[ignore = "writes PNGs to look at by eye, asserts nothing; run with --ignored"]
    fn write_samples() {
        let dir = std::env::temp_dir().join("plot-samples");
        let mut chart = two_series_chart();
        chart.series.push(Series {
            name: "gappy".into(),
            points: vec![
                (1.0, 0.2),
                (2.0, 0.4),
                (2.5, f64::NAN),
                (3.0, 0.1),
                (6.0, -0.3),
                (8.0, f64::NAN),
                (9.0, 0.9),
            ],
        });
        chart.y_label = "score (a.u.)".into();
        save_png(&chart.render(900, 500), &dir.join("chart_900x500.png")).expect("save");
        save_png(&chart.render(480, 300), &dir.join("chart_480x300.png")).expect("save");
        let font = LineChart {
            title: " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~".into(),
            x_label: "The quick brown fox jumps over the lazy dog: gypsy jq?".into(),
            y_label: "tiny values".into(),
            series: vec![Series { name: "tiny".into(), points: (0..20).map(|i| (f64::from(i), f64::from(i) * 1e-4)).collect() }],
            ..LineChart::default()
        };
        save_png(&font.render(1300, 400), &dir.join("font.png")).expect("save");
        let classes: Vec<String> = [
            "walk",
            "run",
            "jump",
            "sit",
            "stand",
            "wave hands",
            "a rather long class name",
        ]
        .map(String::from)
        .to_vec();
        let counts: Vec<Vec<u64>> = (0..7u64)
            .map(|r| {
                (0..7u64)
                    .map(|c| {
                        if r == c {
                            40 + r * 300
                        } else {
                            (r * 7 + c * 3) % 11
                        }
                    })
                    .collect()
            })
            .collect();
        save_png(
            &confusion_matrix("Confusion (validation)", &classes, &counts),
            &dir.join("confusion.png"),
        )
        .expect("save");
        let short: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        save_png(
            &confusion_matrix(
                "3 classes",
                &short,
                &[vec![5, 1, 0], vec![2, 9, 0], vec![0, 0, 0]],
            ),
            &dir.join("confusion3.png"),
        )
        .expect("save");
        let n = 45;
        let many: Vec<String> = (0..n).map(|i| format!("class_{i}")).collect();
        let counts: Vec<Vec<u64>> = (0..n)
            .map(|r| {
                (0..n)
                    .map(|c| if r == c { 20 } else { ((r * c) % 5) as u64 })
                    .collect()
            })
            .collect();
        save_png(
            &confusion_matrix("45 classes", &many, &counts),
            &dir.join("confusion45.png"),
        )
        .expect("save");
        save_png(
            &hstack(&[
                chart.render(480, 300),
                confusion_matrix(
                    "3 classes",
                    &short,
                    &[vec![5, 1, 0], vec![2, 9, 0], vec![0, 0, 0]],
                ),
            ]),
            &dir.join("hstack.png"),
        )
        .expect("save");
    }
}
