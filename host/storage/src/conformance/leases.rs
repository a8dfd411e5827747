use crate::Backend;

pub(super) const TESTS: &[super::Test] = &[
    ("lease_is_exclusive_until_it_expires", lease_is_exclusive_until_it_expires),
    ("lease_release_only_by_its_holder", lease_release_only_by_its_holder),
];

fn lease_is_exclusive_until_it_expires(store: &dyn Backend) {
    assert!(store.lease_acquire("ec2-owner/a", "host-1", 30, 1_000).unwrap());
    assert!(!store.lease_acquire("ec2-owner/a", "host-2", 30, 1_010).unwrap(), "held by host-1");
    assert!(store.lease_acquire("ec2-owner/b", "host-2", 30, 1_010).unwrap(), "another name is free");
    assert!(store.lease_acquire("ec2-owner/a", "host-1", 30, 1_020).unwrap(), "the holder renews");
    let held = store.lease_get("ec2-owner/a").unwrap().unwrap();
    assert_eq!((held.holder.as_str(), held.expires_at), ("host-1", 1_050));
    assert!(!store.lease_acquire("ec2-owner/a", "host-2", 30, 1_049).unwrap());
    assert!(store.lease_acquire("ec2-owner/a", "host-2", 30, 1_050).unwrap(), "expired: anyone may take it");
    assert_eq!(store.lease_get("ec2-owner/a").unwrap().unwrap().holder, "host-2");
}

fn lease_release_only_by_its_holder(store: &dyn Backend) {
    assert!(store.lease_acquire("evolution/echo", "host-1", 30, 1_000).unwrap());
    store.lease_release("evolution/echo", "host-2").unwrap();
    assert_eq!(store.lease_get("evolution/echo").unwrap().unwrap().holder, "host-1", "not released by another");
    store.lease_release("evolution/echo", "host-1").unwrap();
    assert_eq!(store.lease_get("evolution/echo").unwrap(), None);
    assert!(store.lease_acquire("evolution/echo", "host-2", 30, 1_001).unwrap());
}
