//! Frames onto the device and into the network's input: the upload, then normalisation there.

use burn::prelude::*;
use burn::tensor::DType;

/// ImageNet channel means (RGB), in `[0, 1]` units.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), in `[0, 1]` units.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Uploads interleaved RGB bytes (`[N, H, W, 3]`, row-major, what the decoder writes) to
/// `device` as they are, one byte per value, and widens them to floats there:
/// [`upload_bytes`], then [`unpack_bytes`].
///
/// A float tensor made from byte data would be converted to f32 on the host first: one thread
/// touching every value and four bytes per value crossing to the device (20 ms a batch of 64
/// frames on an H200 machine, 40% of the CNN's time).
pub fn upload_rgb(bytes: Vec<u8>, [n, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    let len = n * h * w * 3;
    assert_eq!(bytes.len(), len, "upload_rgb: {n}x{h}x{w}x3 frames");
    unpack_bytes(upload_bytes(bytes, device), len).reshape([n, h, w, 3])
}

/// Bytes to `device` as little-endian 32-bit words, the narrowest integers every backend
/// stores, zero-padded to a whole word. Nothing converts them on the host: they are declared
/// as the dtype they are uploaded as.
pub fn upload_bytes(mut bytes: Vec<u8>, device: &Device) -> Tensor<1, Int> {
    let words = bytes.len().div_ceil(4);
    bytes.resize(words * 4, 0);
    Tensor::from_data(
        TensorData::from_bytes_vec(bytes, [words], DType::I32),
        (device, DType::I32),
    )
}

/// The first `len` bytes of [`upload_bytes`]' words as floats `0..=255`, on the device: one
/// broadcast shift and mask (byte k of word i is value 4i + k; the mask also clears the sign
/// bits an arithmetic shift brings in).
pub fn unpack_bytes(words: Tensor<1, Int>, len: usize) -> Tensor<1> {
    let [count] = words.dims();
    let shifts = Tensor::<2, Int>::from_data(
        TensorData::new(vec![0i32, 8, 16, 24], [1, 4]),
        (&words.device(), DType::I32),
    );
    words
        .reshape([count, 1])
        .bitwise_right_shift(shifts)
        .bitwise_and_scalar(0xff)
        .reshape([count * 4])
        .slice(0..len)
        .float()
}

/// RGB values in `0..=255`, `[N, H, W, 3]`, to the network's input `[N, 3, H, W]`:
/// scaled to `[0, 1]`, minus the ImageNet mean, over the ImageNet standard deviation.
pub fn normalize(rgb: Tensor<4>) -> Tensor<4> {
    let device = rgb.device();
    // (x / 255 - mean) / std  ==  x * (1 / (255 std)) - mean / std
    let scale = IMAGENET_STD.map(|s| 1.0 / (255.0 * s));
    let shift = std::array::from_fn::<f32, 3, _>(|c| IMAGENET_MEAN[c] / IMAGENET_STD[c]);
    let scale = Tensor::<1>::from_floats(scale, &device).reshape([1, 3, 1, 1]);
    let shift = Tensor::<1>::from_floats(shift, &device).reshape([1, 3, 1, 1]);
    rgb.permute([0, 3, 1, 2]) * scale - shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_channel_with_imagenet_statistics() {
        let device = Device::flex();
        // One 1x2 image: pixel (0, 0) = (0, 128, 255), pixel (0, 1) = (255, 255, 255).
        let rgb = upload_rgb(vec![0, 128, 255, 255, 255, 255], [1, 1, 2], &device);
        let x = normalize(rgb);
        assert_eq!(x.dims(), [1, 3, 1, 2]);
        let got = x.into_data().try_to_vec::<f32>().expect("f32 data");
        let expect = |v: f32, c: usize| (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        let want = [
            expect(0.0, 0),
            expect(255.0, 0),
            expect(128.0, 1),
            expect(255.0, 1),
            expect(255.0, 2),
            expect(255.0, 2),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn every_byte_value_arrives_in_place() {
        let device = Device::flex();
        // 3 frames of 2x15 pixels: 270 values, not a multiple of 4; the first 256 are every
        // byte value once (157 is odd), so high bits land in every position of a word.
        let bytes: Vec<u8> = (0..270u32).map(|i| (i * 157 % 256) as u8).collect();
        let got = upload_rgb(bytes.clone(), [3, 2, 15], &device);
        assert_eq!(got.dims(), [3, 2, 15, 3]);
        let got = got.into_data().try_to_vec::<f32>().expect("f32 data");
        let want: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
        assert_eq!(got, want);
    }
}
