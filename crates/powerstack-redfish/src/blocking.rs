//! A blocking wrapper for the CLI: the async client on a current-thread runtime of its own.

use crate::client::{Bmc, BmcConfig};
use crate::error::Error;
use crate::limits::{LimitApplied, LimitRequest};
use crate::readings::Readings;
use crate::systems::{
    PowerState, ResetType, SystemPower, Transition, TransitionOptions, TransitionOutcome,
};

/// [`Bmc`], blocking. Dropping it ends its session (best effort; not when dropped inside an
/// async runtime).
pub struct BlockingBmc {
    runtime: tokio::runtime::Runtime,
    bmc: Bmc,
}

impl BlockingBmc {
    /// A blocking client of the BMC at `config.url`.
    pub fn new(config: &BmcConfig) -> Result<BlockingBmc, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Transport { uri: String::new(), reason: e.to_string() })?;
        let bmc = {
            let _entered = runtime.enter();
            Bmc::new(config)?
        };
        Ok(BlockingBmc { runtime, bmc })
    }

    /// [`Bmc::readings`], blocking.
    pub fn readings(&self) -> Result<Readings, Error> {
        self.runtime.block_on(self.bmc.readings())
    }

    /// [`Bmc::set_power_limit`], blocking.
    pub fn set_power_limit(&self, request: &LimitRequest) -> Result<LimitApplied, Error> {
        self.runtime.block_on(self.bmc.set_power_limit(request))
    }

    /// [`Bmc::systems`], blocking.
    pub fn systems(&self) -> Result<Vec<SystemPower>, Error> {
        self.runtime.block_on(self.bmc.systems())
    }

    /// [`Bmc::power_state`], blocking.
    pub fn power_state(&self, system_id: &str) -> Result<PowerState, Error> {
        self.runtime.block_on(self.bmc.power_state(system_id))
    }

    /// [`Bmc::send_reset`], blocking.
    pub fn send_reset(&self, system_id: &str, reset: ResetType) -> Result<(), Error> {
        self.runtime.block_on(self.bmc.send_reset(system_id, reset))
    }

    /// [`Bmc::transition`], blocking.
    pub fn transition(
        &self,
        system_id: &str,
        transition: Transition,
        options: &TransitionOptions,
    ) -> Result<TransitionOutcome, Error> {
        self.runtime.block_on(self.bmc.transition(system_id, transition, options))
    }

    /// [`Bmc::close`], blocking.
    pub fn close(&self) {
        self.runtime.block_on(self.bmc.close());
    }
}

impl Drop for BlockingBmc {
    fn drop(&mut self) {
        // Blocking inside another runtime would panic: the session is then left to expire.
        if tokio::runtime::Handle::try_current().is_err() {
            self.close();
        }
    }
}
