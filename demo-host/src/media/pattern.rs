//! The test pattern, rendered straight into I420 (no RGB pass, no conversion per pixel).
//!
//! Layout, top to bottom: colour bars that scroll sideways every frame with a large frame counter
//! in a black box in their middle, then a band filled with [`PatternStyle::color`] carrying
//! [`PatternStyle::label`]. The band's left tenth never holds text, so a test can decode a frame
//! and read the band colour at [`PatternRenderer::band_probe`].
//!
//! Every rectangle starts and ends on even coordinates, so the half-resolution chroma planes are
//! filled exactly like the luma plane and no pixel needs blending.

use super::PatternStyle;

/// Smallest and largest picture the renderer (and openh264) accept.
pub const MIN_SIZE: (u32, u32) = (320, 240);
/// Largest picture (openh264's limit, level 5.2).
pub const MAX_SIZE: (u32, u32) = (3840, 2160);

/// Clamps a requested size into [`MIN_SIZE`]..=[`MAX_SIZE`] and rounds odd values down to even.
pub fn clamp_size(width: u32, height: u32) -> (u32, u32) {
    let w = width.clamp(MIN_SIZE.0, MAX_SIZE.0) & !1;
    let h = height.clamp(MIN_SIZE.1, MAX_SIZE.1) & !1;
    (w, h)
}

/// RGB to limited-range BT.601 Y'CbCr (what decoders assume for H.264 without colour VUI).
pub fn rgb_to_yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(i32::from);
    let y = (66 * r + 129 * g + 25 * b + 128) >> 8;
    let u = (-38 * r - 74 * g + 112 * b + 128) >> 8;
    let v = (112 * r - 94 * g - 18 * b + 128) >> 8;
    [(y + 16) as u8, (u + 128) as u8, (v + 128) as u8]
}

/// The eight classic bars in RGB: white, yellow, cyan, green, magenta, red, blue, black.
const BARS_RGB: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// One picture in I420 (tightly packed planes); implements openh264's `YUVSource`.
#[derive(Debug, Clone)]
pub struct Frame420 {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Frame420 {
    fn new(width: usize, height: usize) -> Self {
        Frame420 {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; width * height / 4],
            v: vec![128; width * height / 4],
        }
    }

    /// Fills `[x, x+w) × [y, y+h)` (clipped, rounded to even) with a Y'CbCr colour.
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, yuv: [u8; 3]) {
        let x0 = (x & !1).min(self.width);
        let y0 = (y & !1).min(self.height);
        let x1 = ((x + w + 1) & !1).min(self.width);
        let y1 = ((y + h + 1) & !1).min(self.height);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for row in y0..y1 {
            self.y[row * self.width + x0..row * self.width + x1].fill(yuv[0]);
        }
        let cw = self.width / 2;
        for row in y0 / 2..y1 / 2 {
            self.u[row * cw + x0 / 2..row * cw + x1 / 2].fill(yuv[1]);
            self.v[row * cw + x0 / 2..row * cw + x1 / 2].fill(yuv[2]);
        }
    }
}

impl openh264::formats::YUVSource for Frame420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.y
    }
    fn u(&self) -> &[u8] {
        &self.u
    }
    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Draws the pattern of one producer, frame after frame, into one reused buffer.
#[derive(Debug, Clone)]
pub struct PatternRenderer {
    style: PatternStyle,
    band_yuv: [u8; 3],
    text_yuv: [u8; 3],
    band_top: usize,
    bars: [[u8; 3]; 8],
    frame: Frame420,
}

impl PatternRenderer {
    /// A renderer for a `width`×`height` picture (clamped with [`clamp_size`]).
    pub fn new(width: u32, height: u32, style: PatternStyle) -> Self {
        let (w, h) = clamp_size(width, height);
        let (w, h) = (w as usize, h as usize);
        let band_h = ((h / 6).max(32)) & !1;
        let band_yuv = rgb_to_yuv(style.color);
        let text_yuv = if band_yuv[0] > 110 {
            [16, 128, 128]
        } else {
            [235, 128, 128]
        };
        let mut r = PatternRenderer {
            style,
            band_yuv,
            text_yuv,
            band_top: h - band_h,
            bars: BARS_RGB.map(rgb_to_yuv),
            frame: Frame420::new(w, h),
        };
        r.draw_band();
        r
    }

    /// Picture width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.frame.width as u32, self.frame.height as u32)
    }

    /// A rectangle `(x, y, w, h)` inside the label band that is never drawn over: decode a frame
    /// and average it to find [`PatternStyle::color`].
    pub fn band_probe(&self) -> (u32, u32, u32, u32) {
        let (w, h) = self.size();
        let band_h = h - self.band_top as u32;
        (
            w / 40,
            self.band_top as u32 + band_h / 4,
            (w / 20).max(4),
            band_h / 2,
        )
    }

    /// Same as [`PatternRenderer::band_probe`] for a picture size, without a renderer.
    pub fn band_probe_for(width: u32, height: u32) -> (u32, u32, u32, u32) {
        let (w, h) = clamp_size(width, height);
        let band_h = ((h / 6).max(32)) & !1;
        (w / 40, h - band_h + band_h / 4, (w / 20).max(4), band_h / 2)
    }

    /// Renders frame number `index` and returns the picture.
    pub fn render(&mut self, index: u64) -> &Frame420 {
        self.draw_bars(index);
        self.draw_counter(index);
        &self.frame
    }

    fn draw_band(&mut self) {
        let (w, h) = (self.frame.width, self.frame.height);
        let top = self.band_top;
        let band_h = h - top;
        self.frame.fill(0, top, w, band_h, self.band_yuv);
        // Text fits the middle 80 %: start as tall as 60 % of the band, shrink, then truncate.
        let chars: Vec<char> = self.style.label.chars().collect();
        let max_w = w * 8 / 10;
        let mut scale = ((band_h * 6 / 10) / 7).max(2) & !1;
        while scale > 2 && chars.len() * 6 * scale > max_w {
            scale -= 2;
        }
        let fit = (max_w / (6 * scale)).min(chars.len());
        let text: String = chars[..fit].iter().collect();
        let text_w = fit * 6 * scale;
        let x = (w - text_w) / 2;
        let y = top + (band_h - 7 * scale) / 2;
        let colour = self.text_yuv;
        draw_text(&mut self.frame, &text, x, y, scale, colour);
    }

    fn draw_bars(&mut self, index: u64) {
        let w = self.frame.width;
        let rows = self.band_top;
        let step = (w / 160).max(2) & !1;
        let shift = ((index as usize).wrapping_mul(step)) % w;
        let cw = w / 2;
        let bars = self.bars;
        let bar = |x: usize| bars[((x + shift) % w) * 8 / w];
        let fr = &mut self.frame;
        for x in 0..w {
            fr.y[x] = bar(x)[0];
        }
        for cx in 0..cw {
            let c = bar(cx * 2);
            fr.u[cx] = c[1];
            fr.v[cx] = c[2];
        }
        for row in 1..rows {
            fr.y.copy_within(0..w, row * w);
        }
        for row in 1..rows / 2 {
            fr.u.copy_within(0..cw, row * cw);
            fr.v.copy_within(0..cw, row * cw);
        }
    }

    fn draw_counter(&mut self, index: u64) {
        let (w, rows) = (self.frame.width, self.band_top);
        let text = format!("{:06}", index % 1_000_000);
        let mut scale = (rows / 3 / 8).max(2) & !1;
        while scale > 2 && text.len() * 6 * scale + 4 * scale > w * 9 / 10 {
            scale -= 2;
        }
        let text_w = text.len() * 6 * scale;
        let (box_w, box_h) = (text_w + 4 * scale, 11 * scale);
        let bx = (w.saturating_sub(box_w)) / 2;
        let by = rows.saturating_sub(box_h) / 2;
        self.frame.fill(bx, by, box_w, box_h, [16, 128, 128]);
        draw_text(
            &mut self.frame,
            &text,
            bx + 2 * scale + scale / 2,
            by + 2 * scale,
            scale,
            [235, 128, 128],
        );
    }
}

/// Mean Y'CbCr over the label band probe ([`PatternRenderer::band_probe_for`]) of a 4:2:0
/// picture, e.g. one decoded from the stream: compare it with [`rgb_to_yuv`] of the
/// [`PatternStyle::color`] expected (encoding shifts it a little) to tell which producer it came
/// from.
pub fn band_mean(yuv: &impl openh264::formats::YUVSource) -> [f64; 3] {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let (px, py, pw, ph) = PatternRenderer::band_probe_for(w as u32, h as u32);
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in py as usize..(py + ph) as usize {
        for x in px as usize..(px + pw) as usize {
            sum[0] += f64::from(yuv.y()[y * sy + x]);
            sum[1] += f64::from(yuv.u()[(y / 2) * su + x / 2]);
            sum[2] += f64::from(yuv.v()[(y / 2) * sv + x / 2]);
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

fn draw_text(frame: &mut Frame420, text: &str, x: usize, y: usize, scale: usize, yuv: [u8; 3]) {
    for (i, ch) in text.chars().enumerate() {
        let rows = glyph(ch);
        let gx = x + i * 6 * scale;
        for (r, bits) in rows.iter().enumerate() {
            for c in 0..5 {
                if bits & (0x10 >> c) != 0 {
                    frame.fill(gx + c * scale, y + r * scale, scale, scale, yuv);
                }
            }
        }
    }
}

/// A 5×7 bitmap font: digits, Latin letters (lower case drawn as upper), a little punctuation.
fn glyph(ch: char) -> [u8; 7] {
    const DIGITS: [[u8; 7]; 10] = [
        [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
    ];
    const LETTERS: [[u8; 7]; 26] = [
        [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
    ];
    match ch {
        '0'..='9' => DIGITS[ch as usize - '0' as usize],
        'A'..='Z' => LETTERS[ch as usize - 'A' as usize],
        'a'..='z' => LETTERS[ch as usize - 'a' as usize],
        ' ' => [0; 7],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::formats::YUVSource;

    fn style() -> PatternStyle {
        PatternStyle {
            label: "lobby one".into(),
            color: [200, 30, 60],
        }
    }

    #[test]
    fn sizes_are_clamped_to_even_within_limits() {
        assert_eq!(clamp_size(1921, 1081), (1920, 1080));
        assert_eq!(clamp_size(100, 100), (320, 240));
        assert_eq!(clamp_size(9999, 9999), (3840, 2160));
        let r = PatternRenderer::new(641, 361, style());
        assert_eq!(r.size(), (640, 360));
    }

    #[test]
    fn band_probe_holds_the_style_colour_and_frames_differ() {
        let mut r = PatternRenderer::new(640, 360, style());
        let (px, py, pw, ph) = r.band_probe();
        assert_eq!((px, py, pw, ph), PatternRenderer::band_probe_for(640, 360));
        let want = rgb_to_yuv([200, 30, 60]);
        let a = r.render(0).clone();
        for y in py..py + ph {
            for x in px..px + pw {
                assert_eq!(a.y()[(y * 640 + x) as usize], want[0]);
                assert_eq!(a.u()[((y / 2) * 320 + x / 2) as usize], want[1]);
            }
        }
        let b = r.render(1).clone();
        assert_ne!(a.y(), b.y());
    }

    #[test]
    fn band_mean_of_a_rendered_frame_is_the_style_colour() {
        let mut r = PatternRenderer::new(640, 360, style());
        let want = rgb_to_yuv([200, 30, 60]).map(f64::from);
        assert_eq!(band_mean(r.render(3)), want);
    }

    #[test]
    fn long_labels_and_odd_characters_do_not_panic() {
        let long = PatternStyle {
            label: "ü€ ".repeat(500),
            color: [0, 0, 0],
        };
        let mut r = PatternRenderer::new(320, 240, long);
        r.render(999_999_999);
        let mut big = PatternRenderer::new(3840, 2160, style());
        assert_eq!(big.render(7).y().len(), 3840 * 2160);
    }
}
