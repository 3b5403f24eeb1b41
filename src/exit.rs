//! Exit codes a CI can act on (Jepsen, k6): 0 everything held, 1 a regression or failed threshold,
//! 2 the infrastructure failed (a target could not be provisioned, agentsh could not be obtained),
//! 3 bad usage, 130 interrupted.

pub const OK: u8 = 0;
pub const REGRESSION: u8 = 1;
pub const INFRA: u8 = 2;
pub const USAGE: u8 = 3;
/// Ctrl-C (128 + SIGINT, the shell's convention); targets are destroyed first.
pub const INTERRUPTED: u8 = 130;

/// An error caused by what the user asked for, not by the machine or a target.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|c| c.downcast_ref::<UsageError>().is_some()) { USAGE } else { INFRA }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_errors_map_to_3_even_with_context() {
        let e = Err::<(), _>(usage("bad --vms")).context("parsing").unwrap_err();
        assert_eq!(code_for(&e), USAGE);
        assert_eq!(code_for(&anyhow::anyhow!("ssh lost")), INFRA);
    }
}
