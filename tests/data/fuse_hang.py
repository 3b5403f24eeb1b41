#!/usr/bin/env python3
"""Hangs a FUSE mount on purpose, the way agentsh v0.16.9's server wedges.

Mounts /mnt/abench-hang with this process as the FUSE daemon, answers INIT, then forks a child
that stats a file in the mount. The parent reads that LOOKUP request and exits without
answering. The child inherited the /dev/fuse descriptor, so the connection stays up, and the
child waits forever in request_wait_answer, uninterruptibly: SIGKILL does not end it, so the
container cannot be stopped until the connection is aborted.
"""
import ctypes
import os
import struct
import sys
import time

MNT = "/mnt/abench-hang"
FUSE_INIT = 26

fd = os.open("/dev/fuse", os.O_RDWR)
os.makedirs(MNT, exist_ok=True)
libc = ctypes.CDLL(None, use_errno=True)
opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
if libc.mount(b"abench-hang", MNT.encode(), b"fuse", 0, opts) != 0:
    sys.exit(f"mount failed: {os.strerror(ctypes.get_errno())}")

# fuse_in_header: len u32, opcode u32, unique u64, nodeid u64, uid, gid, pid u32, 2 × u16.
req = os.read(fd, 1 << 20)
_, opcode, unique = struct.unpack_from("<IIQ", req)
if opcode != FUSE_INIT:
    sys.exit(f"expected INIT, got opcode {opcode}")
major, minor = struct.unpack_from("<II", req, 40)
# fuse_init_out (64 bytes): major, minor, max_readahead, flags, max_background,
# congestion_threshold, max_write, time_gran, max_pages, map_alignment, flags2, unused[7].
init_out = struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), 0, 0, 0, 0, 4096, 0, 0, 0, 0, *([0] * 7))
os.write(fd, struct.pack("<IiQ", 16 + len(init_out), 0, unique) + init_out)

if os.fork() == 0:
    os.setsid()
    # Let the ssh session that started us end: only the /dev/fuse descriptor stays inherited.
    null = os.open("/dev/null", os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    try:
        os.stat(MNT + "/never-answered")
    finally:
        os._exit(0)

os.read(fd, 1 << 20)  # the child's LOOKUP: taken, never answered
print("hung", flush=True)
os._exit(0)
