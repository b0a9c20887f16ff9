# Shared by the scripts that start and stop local control planes
# (hack/apiserver-up.sh, e2e/local/up.sh and their -down scripts): detached
# daemons tracked by pid files, polling with deadlines, and a throwaway PKI.
#
# The sourcing script sets:
#   plane    name used as the log prefix
#   pki run logs   directories for certificates, pid files and daemon logs
#   timeout  seconds per wait
#   context  (optional) kubeconfig cluster/context name, default: $plane
#   in_ns    (optional) array, a command prefix that enters the plane's network
#            namespace (e.g. nsenter --net=/run/netns/x); empty: this namespace
# shellcheck shell=bash
# SC2154 for this whole file: plane, pki, run, logs and timeout are the sourcing
# script's (listed above); shellcheck -x checks them in each script that sets them.
# shellcheck disable=SC2154

[ -v in_ns ] || in_ns=()

log() { echo "$plane: $*" >&2; }

# running NAME EXE: the pid file's process is alive and runs EXE (a stale pid
# file, a reused pid or a binary from another pinned version does not count).
running() {
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$2")" ]
}

# alive PID: the process exists and has not finished exiting. /proc/PID/exe
# vanishes early in exit, before sockets are closed, so it cannot tell this;
# a zombie ("Z") has released its ports.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# wait_gone PID SECONDS: poll until the process is gone, up to a deadline.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# stop_pid NAME OURS GRACE: SIGTERM the pid-file process when the predicate
# OURS (a function taking the pid) says it is one of ours, SIGKILL after GRACE
# seconds. A reused pid running an unrelated program is never hit.
stop_pid() {
  local name=$1 ours=$2 grace=$3 pid
  pid=$(cat "$run/$name.pid" 2>/dev/null) || return 0
  if [ -n "$pid" ] && "$ours" "$pid"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$grace"; then
      log "$name did not exit within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || { log "$name (pid $pid) survived SIGKILL"; return 1; }
    fi
  fi
  rm -f "$run/$name.pid"
}

# port_free HOST PORT: nothing listens there (in the plane's namespace).
port_free() { ! "${in_ns[@]}" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# start NAME HOST PORT EXE ARGS...: detached (own session, no inherited stdio,
# so a caller capturing our output is not held open), in the plane's network
# namespace, logging to logs/NAME.log. PORT "-" skips the free-port check.
# In a non-interactive script a background job is no process-group leader, so
# setsid execs in place and $! is the daemon's own pid (nsenter execs too).
start() {
  local name=$1 host=$2 port=$3
  shift 3
  # A process that was just stopped (or crashed) may still be closing it.
  local deadline=$((SECONDS + 10))
  until [ "$port" = - ] || port_free "$host" "$port"; do
    [ "$SECONDS" -lt "$deadline" ] || { log "$host:$port is in use by another program; cannot start $name"; exit 1; }
    sleep 0.2
  done
  log "starting $name (log: $logs/$name.log)"
  setsid "${in_ns[@]}" "$@" </dev/null >>"$logs/$name.log" 2>&1 9>&- &
  echo $! >"$run/$name.pid"
}

# wait_for WHAT NAME CMD...: poll CMD until it succeeds, printing progress, up
# to $timeout seconds; on failure show the component's log tail.
wait_for() {
  local what=$1 name=$2 deadline=$((SECONDS + timeout)) next=$((SECONDS + 5))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && [ -f "$run/$name.pid" ] && ! kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
      log "$name exited; last log lines:"; tail -n 30 "$logs/$name.log" >&2; exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      [ -z "$name" ] || { log "last lines of $logs/$name.log:"; tail -n 30 "$logs/$name.log" >&2; }
      exit 1
    fi
    if [ "$SECONDS" -ge "$next" ]; then log "waiting for $what ..."; next=$((SECONDS + 5)); fi
    sleep 0.5
  done
  log "$what: ok"
}

# --- PKI ---------------------------------------------------------------------

# make_ca NAME CN SIGNED...: self-signed CA key + certificate. A new CA
# invalidates the certificates it signed (SIGNED), so they are made again.
make_ca() {
  local name=$1 cn=$2 c
  shift 2
  [ -s "$pki/$name.crt" ] && return 0
  log "creating $name in $pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -out "$pki/$name.crt" -days 3650 \
    -subj "/CN=$cn" 2>/dev/null
  for c in "$@"; do rm -f "$pki/$c.crt" "$pki/$c.key"; done
}

# sign NAME SUBJECT EXTENSIONS [CA]: key + certificate signed by CA (ca).
sign() {
  local name=$1 subj=$2 ext=$3 ca=${4:-ca}
  [ -s "$pki/$name.crt" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" \
    -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile <(printf '%s\n' "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}

# The sourcing scripts' `sign NAME SUBJECT "$client_ext"` use it, not this file.
# shellcheck disable=SC2034
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

# service_account_keys: the token signing key pair (made once).
service_account_keys() {
  if [ ! -s "$pki/sa.key" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
  fi
}

# write_kubeconfig FILE CERT SERVER: self-contained kubeconfig (embedded certs).
write_kubeconfig() {
  local file=$1 cert=$2 server=$3 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: ${context:-$plane}
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$pki/$cert.crt")
    client-key-data: $(base64 -w0 "$pki/$cert.key")
contexts:
- name: ${context:-$plane}
  context: {cluster: ${context:-$plane}, user: $cert}
current-context: ${context:-$plane}
KUBECONFIG
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}
