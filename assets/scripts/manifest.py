# The target's file system as JSON lines, for the suite's integrity check (src/suite/integrity.rs).
# Run by the harness on the observation channel as `python3 -B -I -` (-B: writing bytecode would
# itself change the file system it is measuring; -I: no user site, no PYTHON* variables).
#
# One line per path: {"path", "type", "mode", "uid", "gid", "size", "mtime_ns"} plus "sha256" for
# regular files of at most 64 KiB, "link" for symlinks, "fstype" for mount points not walked,
# "error" for a path that could not be read; the last line is {"end": true, "count": N, ...} so
# that a cut-off stream is never taken for a file system whose files disappeared.
#
# Only the root's own file system is walked. Every other mount point is recorded (type "m" and its
# fstype) but never entered nor even stat()ed: a stat of a FUSE mount whose server hangs blocks
# forever, and agentsh mounts FUSE workspaces. The exception are files bind-mounted from a disk
# file system (/etc/hosts, /etc/resolv.conf, /etc/hostname in a container): they are plain files
# the suite could tamper with (/etc/hosts decides where a name resolves), and stat-ing them cannot
# hang.
import hashlib
import json
import os
import stat
import sys
import time

LIMIT = 64 * 1024
DISK = {b"ext2", b"ext3", b"ext4", b"xfs", b"btrfs", b"overlay", b"tmpfs", b"zfs", b"f2fs"}
TYPES = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFCHR: "c",
         stat.S_IFBLK: "b", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}
started = time.monotonic()


def unescape(b):
    # mountinfo writes space, tab, newline and backslash in octal (\040).
    out, i = bytearray(), 0
    while i < len(b):
        if b[i:i + 1] == b"\\" and b[i + 1:i + 4].isdigit():
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


mounts = {}
with open("/proc/self/mountinfo", "rb") as f:
    for line in f:
        left, _, right = line.rstrip(b"\n").partition(b" - ")
        fields = left.split(b" ")
        # Later lines are mounted on top of earlier ones at the same point: the last one shows.
        mounts[unescape(fields[4])] = right.split(b" ")[0]

out = sys.stdout
count = 0


def name(p):
    # Not every file name is UTF-8; JSON strings must be.
    return p.decode("utf-8", "backslashreplace")


def emit(rec):
    global count
    count += 1
    out.write(json.dumps(rec, separators=(",", ":")))
    out.write("\n")


def sha256(path, st):
    # O_NONBLOCK|O_NOFOLLOW: if the path became a FIFO or a symlink since lstat, fail, never wait.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise OSError("replaced while being read")
        h = hashlib.sha256()
        while True:
            b = os.read(fd, LIMIT + 1)
            if not b:
                break
            h.update(b)
        return h.hexdigest()
    finally:
        os.close(fd)


def mount_point(e):
    """Records a directory entry that is another mount's mount point; returns False if it is not
    one, or a file bind-mounted from a disk file system (then it is recorded as any file)."""
    fstype = mounts.get(e.path)
    if fstype is None:
        return False
    # The fstype is checked first: is_dir() may fall back to lstat, which must never reach a
    # FUSE server.
    if fstype in DISK and not e.is_dir(follow_symlinks=False):
        return False
    emit({"path": name(e.path), "type": "m", "fstype": fstype.decode("utf-8", "backslashreplace")})
    return True


def record(path):
    """Records one path; returns True when it is a directory to walk."""
    try:
        st = os.lstat(path)
    except OSError as e:
        emit({"path": name(path), "type": "e", "error": e.strerror or str(e)})
        return False
    t = TYPES.get(stat.S_IFMT(st.st_mode), "?")
    rec = {"path": name(path), "type": t, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
           "gid": st.st_gid, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if t == "f" and st.st_size <= LIMIT:
        try:
            rec["sha256"] = sha256(path, st)
        except OSError as e:
            rec["error"] = e.strerror or str(e)
    elif t == "l":
        try:
            rec["link"] = name(os.readlink(path))
        except OSError as e:
            rec["error"] = e.strerror or str(e)
    emit(rec)
    return t == "d"


stack = [b"/"] if record(b"/") else []
while stack:
    d = stack.pop()
    try:
        # scandir reads names and types from the directory itself: nothing here stats an entry.
        entries = list(os.scandir(d))
    except OSError as e:
        emit({"path": name(d), "type": "e", "error": "listing: " + (e.strerror or str(e))})
        continue
    for e in entries:
        if not mount_point(e) and record(e.path):
            stack.append(e.path)

emit({"end": True, "count": count, "seconds": round(time.monotonic() - started, 3)})
out.flush()
