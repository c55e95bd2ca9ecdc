//! The video-understanding pipeline as a library: decode video, compute CNN features per
//! frame, step recurrent heads over time, and write what they say. The `pipeline` binary
//! (`src/main.rs` and `src/cli/`) is a thin layer of argument parsing and terminal output over
//! this crate; every other module here takes validated settings structs, never CLI types.
//!
//! Layers, bottom up (a module uses only those before it):
//! - the `media` crate (FFmpeg in and out, below this one); [`inputs`]: which files to read.
//! - [`hash`], [`progress`], [`plot`], [`output`] (files written atomically), [`sampling`].
//! - [`device`], [`backbone`]: where the CNN runs and the network itself (bytes to features);
//!   [`features`]: the decode-to-features loop; [`imagenet`]: classes from features.
//! - [`model_dir`], [`head`]: a trained temporal model's folder and the head stepping along a
//!   video; [`data`]: training clips and the feature cache.
//! - [`analysis`]: records, events and summaries of a video; [`run`]: one video to its
//!   outputs; [`batch`], [`train`], [`evaluate`], [`bench`]: the jobs behind the commands;
//!   [`synth`]: generated test clips.

pub mod analysis;
pub mod backbone;
pub mod batch;
pub mod bench;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod extract;
pub mod features;
pub mod hash;
pub mod head;
pub mod imagenet;
pub mod inputs;
pub mod model_dir;
pub mod output;
pub mod plot;
pub mod progress;
pub mod run;
pub mod sampling;
pub mod synth;
pub mod task;
pub mod train;
