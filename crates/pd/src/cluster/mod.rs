//! PD's view of the cluster: stores with their last heartbeat, and the region tree as the
//! regions' leaders last reported it (staleness rules included).
