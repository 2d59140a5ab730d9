//! The weather service's own flags, shared by its binary and `quartet serve`.

use std::{path::PathBuf, sync::Arc};

use clap::Args;
use tracing::info;

use crate::{
    error::WeatherError,
    provider::{ReadingProvider, observations::ObservationsProvider, simulated::SimulatedProvider},
    watch::DEFAULT_MAX_WATCHES,
};

/// Where readings come from, and how many watch streams to hold.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WeatherOptions {
    /// Serve the recorded observations of this CSV file instead of the
    /// simulated climate (layout: docs/weather.md). A bad file stops the start,
    /// naming its line and column.
    #[arg(long, env = "QUARTET_OBSERVATIONS", value_name = "FILE.csv")]
    pub observations: Option<PathBuf>,

    /// Most watch streams held at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "QUARTET_MAX_WATCHES", default_value_t = DEFAULT_MAX_WATCHES)]
    pub max_watches: usize,
}

impl Default for WeatherOptions {
    fn default() -> Self {
        Self {
            observations: None,
            max_watches: DEFAULT_MAX_WATCHES,
        }
    }
}

impl WeatherOptions {
    /// The provider these options ask for, loaded and checked.
    pub fn provider(&self) -> Result<Arc<dyn ReadingProvider>, WeatherError> {
        if let Some(path) = &self.observations {
            let provider = ObservationsProvider::load(path)?;
            info!(path = %path.display(), stations = provider.stations().len(), "serving recorded observations");
            return Ok(Arc::new(provider));
        }
        let provider = SimulatedProvider::new();
        info!(
            stations = provider.stations().len(),
            "serving the simulated climate"
        );
        Ok(Arc::new(provider))
    }
}

#[cfg(test)]
mod tests {
    use quartet_runtime::config::parse_options;

    use super::WeatherOptions;

    #[test]
    fn clap_defaults_equal_default_impl() {
        assert_eq!(
            parse_options::<WeatherOptions>([]).unwrap(),
            WeatherOptions::default()
        );
    }
}
