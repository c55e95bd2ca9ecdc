//! Every option FFmpeg is given when a video is opened for decoding, built here and only here:
//! the demuxer's (`avformat_open_input`: the user's own, such as a live source's
//! `rtsp_transport`) and the decoder's (`avcodec_open2`). A new setting of ours is one line in
//! one of these functions.
//!
//! Options the demuxer and its protocol leave unused are warned about when the input is opened.
//! The decoder's leftovers are dropped unseen (ffmpeg-next's `open_as_with` frees them), so a new
//! decoder option needs a test that it takes effect (see `decoder_options_reach_the_decoder`).

use ffmpeg_next::Dictionary;

/// Options for the demuxer (and protocol) of a source opened for decoding or probing: the
/// ones its user gave ([`crate::Source::with_options`]), none of our own.
pub(crate) fn demuxer(given: &[(String, String)]) -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    for (key, value) in given {
        dict.set(key, value);
    }
    dict
}

/// Options for the decoder of the video stream; `keyframes_only`: the sampling takes key frames
/// alone; `motion_vectors`: export the motion vectors as frame side data.
pub(crate) fn decoder(keyframes_only: bool, motion_vectors: bool) -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    // Frame threads, one per core (FFmpeg's "auto"): slice threads alone leave most cores idle
    // on streams with few slices per frame. Not with motion vectors: FFmpeg 5.1's frame
    // threads export them racily (the same H.264 file gave 8 different sequences of coverage in
    // 12 runs on a loaded machine; slice threads gave one), so motion, and everything trained
    // on it, would change from run to run. On 2 cores the decode stage's rate stays within
    // its noise (the converting thread is the slower one).
    dict.set("threads", "auto");
    dict.set(
        "thread_type",
        if motion_vectors { "slice" } else { "frame" },
    );
    if keyframes_only {
        // The decoder drops every other frame before decoding it.
        dict.set("skip_frame", "nokey");
    }
    if motion_vectors {
        // H.264 and the MPEG video family attach each frame's vectors (FFmpeg 5.1 honours it
        // with frame threads too).
        dict.set("export_side_data", "+mvs");
    }
    dict
}

/// Options for a decoder opened only to read the stream's parameters ([`crate::probe`]): one
/// thread, since no frame is decoded.
pub(crate) fn probe_decoder() -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    dict.set("threads", "1");
    dict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dict: &Dictionary) -> Vec<(String, String)> {
        dict.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decoder_threads_on_frames_unless_exporting_vectors_and_skips_non_key_frames_when_asked() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            entries(&decoder(false, false)),
            [pair("threads", "auto"), pair("thread_type", "frame")]
        );
        assert!(entries(&decoder(true, false)).contains(&pair("skip_frame", "nokey")));
        let with_vectors = entries(&decoder(false, true));
        assert!(with_vectors.contains(&pair("export_side_data", "+mvs")));
        assert!(with_vectors.contains(&pair("thread_type", "slice")));
        // The demuxer gets the user's options, in order, and nothing of ours.
        assert!(entries(&demuxer(&[])).is_empty());
        let given = [pair("rtsp_transport", "tcp"), pair("timeout", "5")];
        assert_eq!(entries(&demuxer(&given)), given);
    }
}
