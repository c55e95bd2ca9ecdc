//! One small module per subcommand: turn its arguments into the library's settings, call the
//! library, and report to the terminal. No command uses another.

pub mod batch;
pub mod bench;
pub mod classify;
pub mod eval;
pub mod extract;
pub mod info;
pub mod make_clips;
pub mod run;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Result;
use media::DecodeOptions;
use pipeline::backbone::Backbone;
use pipeline::inputs::InputFile;

use super::{ModelArgs, SamplingArgs};

/// What every multi-file command does before work starts: validate the sampling flags, expand
/// the inputs (keeping directory entries `keep` accepts; none is an error unless there are
/// `other_sources`), pick the device, load the backbone.
pub fn prepare(
    inputs: &[PathBuf],
    sampling: &SamplingArgs,
    model: &ModelArgs,
    keep: impl Fn(&Path) -> bool,
    other_sources: bool,
) -> Result<(DecodeOptions, Vec<InputFile>, Backbone)> {
    let options = sampling.settings().options()?;
    let files = if inputs.is_empty() && other_sources {
        Vec::new()
    } else {
        pipeline::inputs::collect(inputs, keep)?
    };
    let settings = model.settings();
    let selected = settings.select_device()?;
    tracing::info!("device: {}", selected.description);
    let backbone = Backbone::load(&settings, options.size, &selected.device)?;
    Ok((options, files, backbone))
}
