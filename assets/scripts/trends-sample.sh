# One sample of agentsh's resource series (src/trends/sample.rs): a `series value` line each,
# run on the observation channel (uid 0, the observer's own bash, not governed by agentsh).
# Every part stands alone: a part that cannot measure prints nothing (never a made-up 0) and the
# others still print. The harness fills in the @...@ placeholders.
export LC_ALL=C
set -o pipefail

# The agentsh server: the oldest process matching watchdog::AGENTSH_SERVER (an auto-started
# second server, if any, is younger; the first is the one that holds the port).
server=$(pgrep -o -f '@SERVER@')
if [ -n "$server" ] && [ -r "/proc/$server/status" ]; then
  echo "server_up 1"
  awk '$1 == "VmRSS:" { print "server_rss_kb", $2 } $1 == "Threads:" { print "server_threads", $2 }' "/proc/$server/status"
  n=$(ls -U "/proc/$server/fd" | wc -l) && echo "server_fds $n"
  # FUSE mounts in the server's mount namespace: mountinfo's file system type is the field after
  # the lone "-"; fuse, fuse.NAME and fuseblk are mounts, fusectl is the kernel's control fs.
  m=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) ~ /^fuse([.]|blk$|$)/) n++; break } }
           END { print n + 0 }' "/proc/$server/mountinfo") && echo "fuse_mounts $m"
else
  echo "server_up 0"
fi

# Sessions the server holds, whatever their state: one that is never let go is memory that is.
s=$(curl -sf --max-time 5 '@API@/sessions' | jq 'if type == "array" then length elif . == null then 0 else error("not a list") end') \
  && [ -n "$s" ] && echo "sessions $s"

# The event store with its write-ahead log and shared-memory index (SQLite in WAL mode keeps
# recent writes in -wal until a checkpoint).
db='@EVENTS_DB@'
total=0
for f in "$db" "$db-wal" "$db-shm"; do
  if [ -f "$f" ]; then b=$(stat -c %s "$f") && total=$((total + b)); fi
done
echo "event_store_bytes $total"

l=$(du -sb /var/log/agentsh | cut -f1) && [ -n "$l" ] && echo "log_bytes $l"

# Processes left behind by finished commands (src/trends/mod.rs says why each rule is there):
# re-parented (to PID 1, to the engine's PID 0, or to the server, which may reap orphans),
# older than @MIN_AGE@ s (no command the harness runs lives that long), started after the target
# was provisioned (the observer shell is installed then: what a VM booted with is older), not
# one of the known long-lived processes, and not a daemon systemd started (a .service cgroup).
now=$(date +%s)
mark=$(stat -c %Y '@MARK@' 2>/dev/null || echo 0)
if candidates=$(ps -eo pid=,ppid=,etimes=,args= | awk -v self="$$" -v server="${server:-none}" \
    -v since="$((now - mark))" -v min_age='@MIN_AGE@' -v known='@KNOWN@' '
    ($2 == 1 || $2 == 0 || $2 == server) && $1 != 1 && $1 != self && $1 != server && $3 >= min_age && $3 < since {
      args = $0; sub(/^ *[0-9]+ +[0-9]+ +[0-9]+ +/, "", args); if (args !~ known) print $1 }'); then
  left=0
  for pid in $candidates; do
    [ -e "/proc/$pid" ] || continue
    grep -qs '^0::.*[.]service$' "/proc/$pid/cgroup" || left=$((left + 1))
  done
  echo "leftover_procs $left"
fi
exit 0
