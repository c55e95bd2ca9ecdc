//! The recurrent half of the product: sequences of frame features `[batch, time, features]` in,
//! "what is happening", "what happens next" and "how unexpected was this" out.
//!
//! - [`TemporalConfig`] / [`TemporalModel`]: input normalisation, a linear projection, stacked
//!   LSTM, GRU or plain tanh RNN layers, and one head ([`Head`]).
//! - [`TemporalModel::forward`] takes and returns the recurrent [`State`], so a video of any
//!   length runs chunk by chunk in constant memory with the same outputs as one pass.
//! - [`train`]: one training loop for the three heads (AdamW, clipping, constant or cosine
//!   schedule, the last or the best validation epoch, input normalisation, a checkpoint per
//!   epoch); [`baseline`]: the order-blind comparison.
//! - [`fusion`]: late fusion, one head per input stream and weights fitted on held-out clips.
//! - [`metrics`]: confusion matrix, accuracy, per-class precision/recall/F1, macro-F1.
//! - [`store`]: a trained model's weights on disk.
//! - [`enum@Error`]: the one error type of all of them.
//!
//! Modules import only from the layers below their own:
//! 1. `error`, `rng`, `sequence` (the data), `model`, `metrics`;
//! 2. `progress` (the loop's state), `baseline`;
//! 3. `checkpoint` (stores the progress), `store` (stores models and baselines);
//! 4. `train`;
//! 5. `fusion` (scores fused heads as `train` scores one).

pub mod baseline;
mod checkpoint;
mod error;
pub mod fusion;
pub mod metrics;
mod model;
mod progress;
mod rng;
mod sequence;
pub mod store;
pub mod train;

pub use error::{Error, Result};
pub use model::{Activation, CellKind, Head, LayerState, State, TemporalConfig, TemporalModel};
pub use progress::EpochStats;
pub use rng::SplitMix64;
pub use sequence::{Sequence, Target};
