//! What a hardened target looks like from the outside: the users, paths, ports and packages the
//! harness puts there and later relies on. Both `provider` (which makes targets and writes their
//! ssh configs) and `provision` (which hardens them) import these, so neither has to reach into
//! the other for a name.

/// The uid-0 user of the observation channel (its shell is a pre-shim copy of bash).
pub const OBSERVER_USER: &str = "abench-obs";
/// That copy of bash: taken before the shim replaces /bin/bash, so agentsh never governs what the
/// harness reads (/proc, logs, RSS).
pub const OBSERVER_SHELL: &str = "/usr/local/libexec/agentsh-bench/bash";
/// Where the harness's own binary goes on a target, to run as the on-target driver.
pub const DRIVER_PATH: &str = "/usr/local/bin/agentsh-bench";

/// agentsh's server on the target (the address `assets/config.yaml` makes it listen on).
pub const HEALTH: &str = "http://127.0.0.1:18080/health";
pub const API: &str = "http://127.0.0.1:18080/api/v1";
/// Starts the server in the background with `AGENTSH_NO_AUTO=1` and waits up to 30 s for /health;
/// exits 1 if it never answers. (Also how the watchdog restarts a wedged server.)
pub const SERVER_START: &str = include_str!("../assets/scripts/start-server.sh");

/// Outside hosts the suite names, each mapped in the target's /etc/hosts to a loopback address of
/// its own where a fixture answers HTTP (80) and HTTPS (443, a certificate from a CA made on the
/// target and trusted there). Network tests then never leave the target whatever agentsh does,
/// and a request that got through is seen in the fixture log. Registry names are `.test`
/// stand-ins, as in the policy.
pub const FIXTURE_HOSTS: &[(&str, &[&str])] = &[
    ("127.0.0.2", &["evil.com", "www.evil.com"]),
    ("127.0.0.3", &["registry.npm.test"]),
    ("127.0.0.4", &["api.github.com"]),
    ("127.0.0.5", &["evil.test"]),
];
/// Every request a fixture answers, one line each (the suite's evidence that traffic got out).
pub const FIXTURE_LOG: &str = "/var/log/agentsh-bench/fixtures.log";

/// What agentsh and the suite need on a target (the exe.dev setup's list plus sshd, iproute2
/// and procps for the harness's own checks). Local images are built with them; VMs get them
/// from apt during provisioning.
pub const PACKAGES: &[&str] = &[
    "openssh-server",
    "ca-certificates",
    "curl",
    "python3",
    "fuse3",
    "libseccomp2",
    "sudo",
    "file",
    "git",
    "jq",
    "iproute2",
    "procps",
    "findutils",
];
