//! Many mock BMCs in one process (the benchmark runs a thousand): each serves its own tree on
//! its own listener, and all are read at once. 300 here, to stay under a 1,024 open-files limit.

mod common;

use common::{block_on, fast};
use futures_util::future::join_all;
use powerstack_mock_bmc::{MockBmc, Options, Tree};
use powerstack_redfish::{Bmc, SetPoint};

#[test]
fn three_hundred_mock_bmcs_serve_at_once() {
    block_on(async {
        let mut mocks = Vec::new();
        for i in 0..300 {
            let tree = match i % 3 {
                0 => Tree::dmtf_controls(),
                1 => Tree::legacy_power(),
                _ => Tree::hpe_cray_ex(),
            };
            mocks.push(MockBmc::start(tree, Options::default()).await.unwrap());
        }
        let clients: Vec<Bmc> = mocks.iter().map(|m| Bmc::new(&fast(m.url())).unwrap()).collect();
        let readings = join_all(clients.iter().map(Bmc::readings)).await;
        for (i, r) in readings.into_iter().enumerate() {
            let r = r.unwrap();
            let limit = &r.chassis[0].limits[0];
            let expected = if i % 3 == 2 { SetPoint::Watts(0.0) } else { SetPoint::Watts(500.0) };
            assert_eq!(limit.set_point, Some(expected), "mock {i}");
        }
        assert!(mocks.iter().all(|m| m.requests() > 0));
    });
}
