#[allow(unused_imports)]
use crate::Backend;

pub(super) const TESTS: &[super::Test] = &[];
