# Starts agentsh's server in the background with AGENTSH_NO_AUTO=1 (a server that dies is seen,
# not silently replaced by the CLI's auto-start) and waits up to 30 s for /health; exits 1 if it
# never answers. Used by provisioning, the watchdog and tests/hardened_targets.rs.
export AGENTSH_NO_AUTO=1
setsid nohup agentsh server --config /etc/agentsh/config.yaml >> /var/log/agentsh/server.log 2>&1 < /dev/null &
for i in $(seq 1 60); do curl -sf --max-time 1 http://127.0.0.1:18080/health >/dev/null && exit 0; sleep 0.5; done
exit 1
