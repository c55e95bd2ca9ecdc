//! Input normalisation, on whatever device the frames were uploaded to.

use burn::prelude::*;

/// ImageNet channel means (RGB), in `[0, 1]` units.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), in `[0, 1]` units.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Uploads interleaved RGB bytes (`[N, H, W, 3]`, row-major, what the decoder writes) to
/// `device` as they are: one byte per value crosses to the device, not four.
pub fn upload_rgb(bytes: Vec<u8>, [n, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(bytes, [n, h, w, 3]), device)
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
}
