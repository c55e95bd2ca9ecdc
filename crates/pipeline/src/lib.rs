//! The video-understanding pipeline as a library: decode video, compute CNN features per
//! frame, step recurrent heads over time, and write what they say. The `pipeline` binary
//! (`src/main.rs` and `src/cli/`) is a thin layer of argument parsing and terminal output over
//! this crate; every other module here takes validated settings structs, never CLI types.
//!
//! Layers, bottom up (a module uses only those before it; the README's Architecture section
//! draws the whole picture):
//! - [`inputs`], [`hash`], [`progress`], [`task`], [`sampling`]: small pieces that know
//!   nothing of models (video itself is the `media` crate's, below this one).
//! - [`output`] (files written atomically, features safetensors), [`device`] (where the
//!   networks run), [`streams`] (which per-frame streams, features and motion, a head reads).
//! - [`backbone`]: the CNN on its device, bytes to features; [`plot`]: PNG charts.
//! - [`features`]: the decode-to-features loop; [`imagenet`]: classes from features.
//! - [`data`]: training clips, splits and the feature cache.
//! - [`model_dir`]: the trained model folder and its contract.
//! - [`head`]: a temporal head stepping along a video; [`extract`]: features to a file;
//!   [`synth`]: generated clips.
//! - [`analysis`]: records, events and summaries of a video; [`evaluate`]: a model's scores.
//! - [`run`]: one video to its outputs; [`train`]: a model folder from labelled clips.
//! - [`batch`], [`bench`]: many videos; timings.

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
pub mod streams;
pub mod synth;
pub mod task;
pub mod train;
