//! A mock BMC on a runtime of its own, for tests that are not async (or whose runtime is busy):
//! its worker threads serve while the test runs commands or waits.

use std::ops::Deref;

use crate::serve::MockBmc;
use crate::tree::Tree;
use crate::{MockError, Options};

/// A [`MockBmc`] served by a runtime it owns; stops when dropped.
pub struct Background {
    // Dropped first: the server is told to stop before its runtime goes.
    mock: MockBmc,
    _runtime: tokio::runtime::Runtime,
}

impl Background {
    /// Serves `tree` on `127.0.0.1` at a port of the system's choosing.
    pub fn start(tree: Tree, options: Options) -> Result<Background, MockError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(MockError::Runtime)?;
        let mock = runtime.block_on(MockBmc::start(tree, options))?;
        Ok(Background { mock, _runtime: runtime })
    }
}

impl Deref for Background {
    type Target = MockBmc;

    fn deref(&self) -> &MockBmc {
        &self.mock
    }
}
