//! Operators (steps sent to a region's leader, one operator per region) and the checkers and
//! schedulers that create them.
