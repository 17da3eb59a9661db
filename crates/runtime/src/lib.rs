//! minikv-runtime: what every node kind (store server, client, and the coming placement driver)
//! runs on: the per-node `Clock` every time-dependent decision reads, `Alarm` (waits on
//! deadlines with one timer each), and `net` (madsim's endpoint in simulation, a small
//! reconnecting TCP endpoint otherwise, typed `send_msg`/`Inbox` over both).

pub mod alarm;
pub mod clock;
pub mod net;

pub use alarm::Alarm;
pub use clock::Clock;

/// A number no other caller is likely to draw: madsim's seeded generator in simulation (so a
/// run stays a function of its seed), the OS's otherwise. For identities that must not repeat
/// across incarnations, like the first request id of a client whose address a new client may
/// reuse.
pub fn nonce() -> u64 {
    madsim::rand::random()
}
