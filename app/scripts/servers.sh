#!/usr/bin/env bash
# Real servers for the app's tests and benchmark, on loopback only:
#   PostgreSQL 25432 (track_functions = all), Redis 26379 (plain), 26380 (ACL user +
#   password; the default user takes a password alone, like an ElastiCache AUTH token), 26381 (TLS), Redis Cluster 27001-27003 (3 masters; bus ports 27004-27006).
# Usage:
#   servers.sh install [--bench]   apt-get install what is missing (+ nginx, wrk)
#   servers.sh start               fresh state: clear leftovers, start everything
#   servers.sh stop                stop everything this script started
#   servers.sh start-one NAME      (re)start one: pg | redis-plain | redis-acl | redis-tls
#   servers.sh stop-one NAME       stop one (the tests use this for outages)
#   servers.sh run-dir             print the state directory (below)
# State, logs and generated secrets live in $CGC_APP_RUN, by default a directory per
# checkout and user under /var/tmp (cachedapp-test-<uid>-<hash of the checkout path>):
# as root the servers run as unprivileged users (postgres, redis), who must reach
# their data even when the checkout sits under a directory they cannot enter (a clone
# in root's 0700 home). "$CGC_APP_RUN/env" is a sourceable file describing the
# servers for the tests. PostgreSQL and the TLS Redis also listen on 127.0.0.2, an
# address their certificate does not name (the tests' wrong-name case).
set -euo pipefail

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_ROOT=${CGC_APP_STATE_ROOT:-/var/tmp}
STATE_PREFIX=$STATE_ROOT/cachedapp-test-$(id -u)-
RUN=${CGC_APP_RUN:-$STATE_PREFIX$(printf '%s' "$APP_DIR" | sha256sum | cut -c1-12)}
LEGACY_RUN=$APP_DIR/.cache/servers  # where earlier versions of this script kept state
WRONG_NAME_HOST=127.0.0.2
PG_PORT=25432
REDIS_PLAIN=26379
REDIS_ACL=26380
REDIS_TLS=26381
CLUSTER_PORTS=(27001 27002 27003)
# Every port sits below Linux's ephemeral range (32768-60999): a port in it can be
# taken at any moment by an outgoing connection's source port (CI saw exactly that).
# Cluster bus ports: port+10000 would land in the ephemeral range, so each master's
# bus port is set explicitly (cluster-port) to the other half of this suite's range.
CLUSTER_BUS_PORTS=(27004 27005 27006)
ALL_PORTS=("$PG_PORT" "$REDIS_PLAIN" "$REDIS_ACL" "$REDIS_TLS" "${CLUSTER_PORTS[@]}" "${CLUSTER_BUS_PORTS[@]}")

log() { printf '[servers] %s\n' "$*" >&2; }
die() { printf '[servers] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# run_as USER CMD...: as root drop to USER, otherwise run as ourselves.
run_as() {
  local user=$1; shift
  # from / : the caller's directory may be one USER cannot enter (a 0700 checkout)
  if is_root; then (cd / && runuser -u "$user" -- "$@"); else "$@"; fi
}

owner_for() { if is_root && id "$1" >/dev/null 2>&1; then echo "$1"; else id -un; fi; }

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $dir && -x $dir/initdb ]] || die "PostgreSQL server binaries not found (servers.sh install)"
  echo "$dir"
}

install_packages() {
  local want=() bench=${1:-}
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
  command -v psql >/dev/null || want+=(postgresql-client)
  command -v redis-server >/dev/null || want+=(redis-server)
  command -v redis-cli >/dev/null || want+=(redis-tools)
  command -v openssl >/dev/null || want+=(openssl)
  command -v ss >/dev/null || want+=(iproute2)
  command -v runuser >/dev/null || want+=(util-linux)
  [[ -x /usr/bin/chromium ]] || want+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || want+=(chromium-driver)
  if [[ $bench == --bench ]]; then
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || want+=(nginx-light)
    command -v wrk >/dev/null || want+=(wrk)
  fi
  ((${#want[@]})) || return 0
  is_root || die "missing packages (${want[*]}); install them as root"
  log "apt-get install ${want[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
}

alive() {  # running, not a zombie waiting for a slow reaper
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
  [[ -n $state && $state != Z ]]
}

listener_pid() {  # the pid listening on 127.0.0.1:PORT, if any
  { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; } || true
}

wait_port_free() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    [[ -z $(listener_pid "$port") ]] && ! ss -ltnH "sport = :$port" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

# The state directory of some checkout (under $STATE_PREFIX) that PATH lies in, if any.
state_dir_of() {
  local rest
  [[ $1 == "$STATE_PREFIX"?* ]] || return 1
  rest=${1#"$STATE_PREFIX"}
  printf '%s%s\n' "$STATE_PREFIX" "${rest%%/*}"
}

# A state directory of ours whose checkout no longer exists (prune_leftovers' rule).
orphaned() {
  [[ -d $1 && ! -L $1 && -O $1 && -f $1/checkout ]] && [[ ! -d $(cat "$1/checkout") ]]
}

# Whether a server working in directory CWD (as /proc shows it) is a leftover this
# script may end: one of this checkout's (under $RUN, or the directory earlier versions
# used), or one of a checkout that no longer exists (its state directory orphaned, or
# already removed by prune_leftovers). Another existing checkout's servers are its
# live test run: never ours to end.
leftover_cwd() {
  local cwd=$1 path=${1% (deleted)} dir
  [[ $path == "$RUN" || $path == "$RUN"/* ]] && return 0
  [[ $path == "$LEGACY_RUN" || $path == "$LEGACY_RUN"/* ]] && return 0
  dir=$(state_dir_of "$path") || return 1
  if [[ $cwd == *" (deleted)" && ! -e $dir ]]; then return 0; fi
  orphaned "$dir"
}

# A leftover of an earlier run holds one of our ports: end it if leftover_cwd says so,
# refuse otherwise (naming the other checkout when it is another one's test server).
clear_port() {
  local port=$1 pid cwd dir other
  pid=$(listener_pid "$port")
  [[ -z $pid ]] && return 0
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
  if [[ -n $cwd ]] && leftover_cwd "$cwd"; then
    log "port $port: ending leftover pid $pid ($cwd)"
    kill "$pid" 2>/dev/null || true
    wait_port_free "$port" || { kill -9 "$pid" 2>/dev/null || true; wait_port_free "$port"; }
  elif dir=$(state_dir_of "${cwd% (deleted)}"); then
    other=$(cat "$dir/checkout" 2>/dev/null || echo "unknown checkout")
    die "port $port is in use by pid $pid, a test server of another checkout ($other, state in $dir), probably its test run in progress; wait for it, or stop it: CGC_APP_RUN=$dir servers.sh stop"
  else
    die "port $port is in use by pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)), not by an earlier run of this script"
  fi
}

# --- PostgreSQL ------------------------------------------------------------------------

pg_init() {
  local bin pwfile owner
  bin=$(pg_bin)
  owner=$(owner_for postgres)
  install -d -m 0755 -o "$owner" "$RUN/pg"
  run_as "$owner" "$bin/initdb" -D "$RUN/pg/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-sync >"$RUN/pg/initdb.log" 2>&1 \
    || { cat "$RUN/pg/initdb.log" >&2; die "initdb failed"; }
  cat >>"$RUN/pg/data/postgresql.conf" <<EOF
# cachedapp test server
listen_addresses = '127.0.0.1,$WRONG_NAME_HOST'
port = $PG_PORT
unix_socket_directories = '$RUN/pg'
ssl = on
ssl_cert_file = '$RUN/tls/server.crt'
ssl_key_file = '$RUN/tls/pg-server.key'
track_functions = all
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF
  pg_start
  pwfile=$RUN/secrets/db_password
  "$bin/psql" -h "$RUN/pg" -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
    -v pw="$(cat "$pwfile")" >/dev/null <<'EOF'
CREATE ROLE cachedapp LOGIN PASSWORD :'pw';
CREATE DATABASE cachedapp OWNER cachedapp;
EOF
}

pg_start() {
  local bin owner
  bin=$(pg_bin)
  owner=$(owner_for postgres)
  [[ -f $RUN/pg/data/PG_VERSION ]] || die "no PostgreSQL data dir (run: servers.sh start)"
  run_as "$owner" "$bin/pg_ctl" -D "$RUN/pg/data" -l "$RUN/pg/server.log" -w -t 30 start >/dev/null \
    || { tail -n 20 "$RUN/pg/server.log" >&2; die "PostgreSQL did not start"; }
}

pg_stop() {
  local bin owner
  [[ -f $RUN/pg/data/postmaster.pid ]] || return 0
  bin=$(pg_bin)
  owner=$(owner_for postgres)
  run_as "$owner" "$bin/pg_ctl" -D "$RUN/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# --- Redis -----------------------------------------------------------------------------

redis_dir() { echo "$RUN/redis-$1"; }

redis_write_conf() {  # NAME PORT [extra config lines on stdin]
  local name=$1 port=$2 dir owner
  dir=$(redis_dir "$name")
  owner=$(owner_for redis)
  install -d -m 0750 -o "$owner" "$dir"
  {
    cat <<EOF
bind 127.0.0.1
port $port
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly no
EOF
    cat
  } >"$dir/redis.conf"
  chown "$owner" "$dir/redis.conf"
  chmod 0640 "$dir/redis.conf"
}

redis_cli() {  # NAME args...: an admin redis-cli for that instance
  local name=$1; shift
  case $name in
    redis-acl) redis-cli -p "$REDIS_ACL" --user admin --pass "$(cat "$RUN/secrets/redis_admin_password")" --no-auth-warning "$@" ;;
    redis-tls) redis-cli -p "$REDIS_TLS" --tls --cacert "$RUN/tls/ca.crt" "$@" ;;
    redis-plain) redis-cli -p "$REDIS_PLAIN" "$@" ;;
    cluster-*) redis-cli -p "${name#cluster-}" "$@" ;;
  esac
}

redis_start() {
  local name=$1 dir owner i
  dir=$(redis_dir "$name")
  owner=$(owner_for redis)
  [[ -f $dir/redis.conf ]] || die "no config for $name (run: servers.sh start)"
  rm -f "$dir/redis.pid"
  run_as "$owner" redis-server "$dir/redis.conf" || die "redis $name did not start"
  for ((i = 0; i < 100; i++)); do
    [[ $(redis_cli "$name" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  tail -n 20 "$dir/redis.log" >&2
  die "redis $name does not answer"
}

redis_stop() {
  local name=$1 dir pid i
  dir=$(redis_dir "$name")
  [[ -f $dir/redis.pid ]] || return 0
  pid=$(cat "$dir/redis.pid")
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 200; i++)); do alive "$pid" || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/redis.pid"
}

make_tls() {
  local d=$RUN/tls
  install -d -m 0755 "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=cachedapp test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3 -extfile "$d/ext.cnf" -out "$d/server.crt" 2>/dev/null
  # One key file per server user, readable by that user only (PostgreSQL insists).
  install -m 0600 -o "$(owner_for postgres)" "$d/server.key" "$d/pg-server.key"
  install -m 0600 -o "$(owner_for redis)" "$d/server.key" "$d/redis-server.key"
  rm -f "$d/server.key" "$d/server.csr"
  chmod 0600 "$d/ca.key"
  chmod 0644 "$d/ca.crt" "$d/server.crt"
}

redis_configure_all() {
  redis_write_conf redis-plain "$REDIS_PLAIN" </dev/null
  redis_write_conf redis-acl "$REDIS_ACL" <<EOF
user default on >$(cat "$RUN/secrets/redis_token") ~cachedapp* resetchannels +@all -@dangerous
user admin on >$(cat "$RUN/secrets/redis_admin_password") ~* &* +@all
user cachedapp on >$(cat "$RUN/secrets/redis_app_password") ~cachedapp* resetchannels +@all -@dangerous
EOF
  redis_write_conf redis-tls 0 <<EOF
tls-port $REDIS_TLS
tls-cert-file $RUN/tls/server.crt
tls-key-file $RUN/tls/redis-server.key
tls-ca-cert-file $RUN/tls/ca.crt
tls-auth-clients no
bind 127.0.0.1 $WRONG_NAME_HOST
EOF
  local i
  for i in "${!CLUSTER_PORTS[@]}"; do
    redis_write_conf "cluster-${CLUSTER_PORTS[i]}" "${CLUSTER_PORTS[i]}" <<EOF
cluster-enabled yes
cluster-port ${CLUSTER_BUS_PORTS[i]}
cluster-config-file nodes.conf
cluster-node-timeout 2000
EOF
  done
}

cluster_create() {
  local port nodes=() i ok
  for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-yes >"$RUN/cluster-create.log" 2>&1 \
    || { cat "$RUN/cluster-create.log" >&2; die "redis cluster create failed"; }
  for ((i = 0; i < 200; i++)); do
    ok=0
    for port in "${CLUSTER_PORTS[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && ok=$((ok + 1))
    done
    ((ok == ${#CLUSTER_PORTS[@]})) && return 0
    sleep 0.05
  done
  die "redis cluster did not reach cluster_state:ok"
}

# --- all -------------------------------------------------------------------------------

write_env() {
  cat >"$RUN/env" <<EOF
CGC_APP_RUN=$RUN
CGC_SERVERS_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/servers.sh
CGC_PG_PORT=$PG_PORT
CGC_PG_SOCKET_DIR=$RUN/pg
CGC_DB_NAME=cachedapp
CGC_DB_USER=cachedapp
CGC_DB_PASSWORD=$(cat "$RUN/secrets/db_password")
CGC_REDIS_PLAIN_PORT=$REDIS_PLAIN
CGC_REDIS_ACL_PORT=$REDIS_ACL
CGC_REDIS_ACL_USER=cachedapp
CGC_REDIS_ACL_PASSWORD=$(cat "$RUN/secrets/redis_app_password")
CGC_REDIS_ADMIN_PASSWORD=$(cat "$RUN/secrets/redis_admin_password")
CGC_REDIS_TOKEN=$(cat "$RUN/secrets/redis_token")
CGC_REDIS_TLS_PORT=$REDIS_TLS
CGC_REDIS_TLS_CA=$RUN/tls/ca.crt
CGC_TLS_CA=$RUN/tls/ca.crt
CGC_WRONG_NAME_HOST=$WRONG_NAME_HOST
CGC_CLUSTER_PORTS="${CLUSTER_PORTS[*]}"
EOF
  chmod 0600 "$RUN/env"
}

stop_all() {
  local port
  [[ -d $RUN ]] || return 0
  for port in "${CLUSTER_PORTS[@]}"; do redis_stop "cluster-$port"; done
  redis_stop redis-tls
  redis_stop redis-acl
  redis_stop redis-plain
  pg_stop
}

# Leftovers of earlier runs: the state directory of a checkout that no longer exists,
# and the one earlier versions of this script kept inside the checkout. Their servers
# are stopped first (stop_all reads $RUN, set here in a subshell).
prune_leftovers() {
  local dir
  for dir in "$STATE_PREFIX"* "$LEGACY_RUN"; do
    [[ -d $dir && ! -L $dir && -O $dir && $dir != "$RUN" ]] || continue
    [[ $dir == "$LEGACY_RUN" ]] || orphaned "$dir" || continue
    log "removing leftover state $dir"
    (RUN=$dir; stop_all) || true
    rm -rf "$dir"
  done
}

# The state directory: ours (not a symlink or another user's, which /var/tmp allows),
# traversable by the server users (0711), listing nothing to others.
make_run_dir() {
  if [[ -L $RUN ]] || [[ -e $RUN && ! -O $RUN ]]; then
    die "$RUN exists and is not a directory owned by $(id -un); remove it"
  fi
  rm -rf "$RUN"
  # mkdir, not install -d: it fails, rather than reusing whatever someone else created
  # at that path between the removal and now; -m sets the mode at creation.
  mkdir -m 0711 "$RUN" || die "could not create $RUN (created by someone else meanwhile?)"
  printf '%s\n' "$APP_DIR" >"$RUN/checkout"
}

start_all() {
  local port s
  stop_all
  prune_leftovers
  for port in "${ALL_PORTS[@]}"; do clear_port "$port"; done
  make_run_dir
  install -d -m 0700 "$RUN/secrets"
  for s in db_password redis_app_password redis_admin_password redis_token; do
    openssl rand -hex 16 >"$RUN/secrets/$s"
  done
  make_tls
  redis_configure_all
  log "starting PostgreSQL on $PG_PORT"
  pg_init
  log "starting Redis on $REDIS_PLAIN, $REDIS_ACL (ACL), $REDIS_TLS (TLS)"
  redis_start redis-plain
  redis_start redis-acl
  redis_start redis-tls
  log "starting Redis Cluster on ${CLUSTER_PORTS[*]}"
  for port in "${CLUSTER_PORTS[@]}"; do redis_start "cluster-$port"; done
  cluster_create
  write_env
  log "ready; environment in $RUN/env"
}

one() {
  local action=$1 name=${2:-}
  case $name in
    pg) if [[ $action == start ]]; then pg_start; else pg_stop; fi ;;
    redis-plain | redis-acl | redis-tls)
      if [[ $action == start ]]; then redis_start "$name"; else redis_stop "$name"; fi ;;
    *) die "unknown server '$name' (pg, redis-plain, redis-acl, redis-tls)" ;;
  esac
}

case ${1:-} in
  install) install_packages "${2:-}" ;;
  start) start_all ;;
  stop) stop_all ;;
  start-one) one start "${2:-}" ;;
  stop-one) one stop "${2:-}" ;;
  run-dir) echo "$RUN" ;;
  *) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
