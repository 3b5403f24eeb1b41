# Aborts the FUSE connections of the mounts this target's processes see, and no others: the
# connections directory lists the whole kernel's, other targets' included. A connection's name
# is the device minor of its mount (field 3 of mountinfo; FUSE mounts have major 0).
# Used by the watchdog (src/watchdog.rs) and by tests/hardened_targets.rs.
c=/sys/fs/fuse/connections
[ -e $c ] || mkdir -p $c 2>/dev/null
ls $c/*/abort >/dev/null 2>&1 || mount -t fusectl fusectl $c 2>/dev/null
for m in $(cat /proc/[0-9]*/mountinfo 2>/dev/null | awk '{for(i=1;i<=NF;i++) if($i=="-"){ if($(i+1) ~ /^fuse/){split($3,d,":"); print d[2]} break }}' | sort -u); do
  if [ -e $c/$m/abort ]; then echo 1 > $c/$m/abort && echo "aborted FUSE connection $m"; fi
done; true
