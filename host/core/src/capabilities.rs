//! The one list of the capabilities this host implements. Policy (which
//! keys a grant may name, what is granted by default, how a scope is
//! checked), availability at load, refusal messages, `agentkernel agents`,
//! linking and per-instance state all come from it: adding a capability is
//! its own crate (or module) implementing
//! [`HostCapability`](agentkernel_runtime::HostCapability) plus one line here
//! (ARCHITECTURE.md, "Adding a capability").
use std::sync::Arc;

use agentkernel_runtime::HostCapability;
use agentkernel_runtime::policy::Capability;

/// Every capability this build implements, in WIT order.
pub fn all() -> Vec<Arc<dyn HostCapability>> {
    let mut list: Vec<Arc<dyn HostCapability>> = vec![
        Arc::new(agentkernel_runtime::log::Log),
        Arc::new(agentkernel_capabilities::Memory),
        Arc::new(agentkernel_llm::Llm),
        Arc::new(agentkernel_capabilities::Agents),
        Arc::new(agentkernel_http::Http),
    ];
    #[cfg(feature = "aws")]
    list.push(Arc::new(agentkernel_aws::capability::AwsEc2));
    list.push(Arc::new(agentkernel_capabilities::Evolution));
    list
}

/// Capabilities granted to an agent its policy does not mention.
pub fn granted_by_default() -> Vec<Capability> {
    all().iter().filter(|c| c.granted_by_default()).filter_map(|c| Capability::from_interface_name(c.name())).collect()
}

/// Whether this build implements `capability`.
pub fn is_available(capability: Capability) -> bool {
    all().iter().any(|c| c.name() == capability.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_capability_is_a_wit_interface_once() {
        let names: Vec<&str> = all().iter().map(|c| c.name()).collect();
        for n in &names {
            assert!(Capability::from_interface_name(n).is_some(), "{n} is not in the WIT package");
            assert_eq!(names.iter().filter(|m| *m == n).count(), 1, "{n} listed twice");
        }
        assert_eq!(granted_by_default(), vec![Capability::LOG, Capability::MEMORY]);
    }
}
