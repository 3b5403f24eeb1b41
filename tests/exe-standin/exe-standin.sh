#!/bin/bash
# A local stand-in for exe.dev's SSH command protocol, for tests only (never the default path).
# Runs as the ForceCommand of a throwaway sshd on 127.0.0.1 and implements, over local containers:
#   new --name=NAME --image=IMAGE --command=none --json   -> {"vm_name","ssh_dest","https_url","status","region"}
#   ls --json                                             -> {"vms":[{"vm_name","status",...}]}
#   rm NAME
#   ssh NAME 'CMD'                                        -> runs CMD through the VM's login shell
# Every "VM" is a container of the harness's local image with no network (the image asked for is
# recorded but not honoured: ubuntu:22.04 is not reachable here). Its ssh_dest, NAME.exe.standin,
# is reached through the test's ssh config (Match host *.exe.standin -> sshd -i in the container).
set -u
image=${ABENCH_STANDIN_IMAGE:?}
pubkey=${ABENCH_STANDIN_PUBKEY:?}
label=${ABENCH_STANDIN_LABEL:?}

fail() { echo "exe-standin: $*" >&2; exit 1; }

read -r -a words <<<"${SSH_ORIGINAL_COMMAND:-}"
verb=${words[0]:-}

case "$verb" in
new)
  name= json=0 want_image= command=
  for w in "${words[@]:1}"; do
    case "$w" in
      --name=*) name=${w#--name=} ;;
      --image=*) want_image=${w#--image=} ;;
      --command=*) command=${w#--command=} ;;
      --json) json=1 ;;
      *) fail "new: unknown option $w" ;;
    esac
  done
  [[ $name =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || fail "new: invalid --name"
  [[ $json == 1 ]] || fail "new: only --json output is implemented"
  podman container exists "$name" && fail "new: a VM named $name already exists"
  podman run -d --init --name "$name" --hostname "$name" --label "$label" \
    --label "exe-standin.image=$want_image" --label "exe-standin.command=$command" \
    --network none --cap-add SYS_ADMIN --cap-add SYS_PTRACE --device /dev/fuse \
    --security-opt seccomp=unconfined "$image" sleep infinity >/dev/null || fail "new: podman run failed"
  podman exec -i "$name" sh -c 'mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && cat > /root/.ssh/authorized_keys' <"$pubkey" \
    || fail "new: cannot install the key"
  printf '{"vm_name":"%s","ssh_dest":"%s.exe.standin","https_url":"https://%s.exe.standin","status":"running","region":"local"}\n' \
    "$name" "$name" "$name"
  ;;
ls)
  [[ ${words[1]:-} == --json ]] || fail "ls: only --json output is implemented"
  podman ps -a --filter "label=$label" --format '{{.Names}}\t{{.State}}' |
    python3 -c 'import json,sys; print(json.dumps({"vms":[{"vm_name":n,"status":s,"ssh_dest":n+".exe.standin"} for n,s in (l.rstrip("\n").split("\t",1) for l in sys.stdin if l.strip())]}))'
  ;;
rm)
  name=${words[1]:-}
  [[ -n $name ]] || fail "rm: which VM?"
  podman ps -a --filter "label=$label" --format '{{.Names}}' | grep -qx "$name" || fail "rm: no VM named $name"
  podman rm -f -t 0 "$name" >/dev/null || fail "rm: podman rm failed"
  echo "removed $name"
  ;;
ssh)
  name=${words[1]:-}
  [[ -n $name ]] || fail "ssh: which VM?"
  rest=${SSH_ORIGINAL_COMMAND#*ssh }
  rest=${rest#"$name"}
  rest=${rest# }
  exec podman exec -i "$name" /bin/bash -c "$rest"
  ;;
*)
  fail "unknown command: ${verb:-<none>}"
  ;;
esac
