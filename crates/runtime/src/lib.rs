//! minikv-runtime: what every node kind (store server, client, and the coming placement driver)
//! runs on: the per-node `Clock` every time-dependent decision reads, `Alarm` (waits on
//! deadlines with one timer each), and `net` (madsim's endpoint in simulation, a small
//! reconnecting TCP endpoint otherwise, typed `send_msg`/`Inbox` over both).

pub mod alarm;
pub mod clock;
pub mod net;

pub use alarm::Alarm;
pub use clock::Clock;
