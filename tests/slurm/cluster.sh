#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the tests: Debian's slurm-wlm with
# munge, job accounting (slurmdbd + MariaDB), partitions `cpu` (default) and `gpu`, the
# latter with two fake GPUs (GRES gpu, devices that are links to /dev/null), and an
# account `bench` that jobs must name (AccountingStorageEnforce=associations).
#
# Usage: tests/slurm/cluster.sh start|stop|status
# Needs root. Installs the packages when missing. Everything lives under $LLMSWEEP_SLURM_DIR
# (default /var/lib/llmsweep-slurm); daemons bind 127.0.0.1 only and are stopped by PID.
set -euo pipefail
D=${LLMSWEEP_SLURM_DIR:-/var/lib/llmsweep-slurm}
HOST=$(hostname -s)
DB_PORT=3307

log() { echo "[cluster] $*" >&2; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND... : poll with a deadline
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit)) delay=0.05
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then log "timed out waiting for $what"; return 1; fi
    sleep $delay
    delay=$(awk -v d=$delay 'BEGIN{d*=1.5; if (d>1) d=1; print d}')
  done
}

install_packages() {
  local pkgs=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server) missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
}

write_configs() {
  mkdir -p "$D"/{state,spool,log,run,mysql} /etc/slurm
  for i in 0 1; do ln -sf /dev/null "/dev/llmsweep-gpu$i"; done
  if [ ! -s "$D/db.pass" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$D/db.pass")
  fi
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=llmsweep
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
MinJobAge=600
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
MpiDefault=none
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
CONF
  cat >/etc/slurm/gres.conf <<CONF
NodeName=$HOST Name=gpu File=/dev/llmsweep-gpu[0-1]
CONF
  (umask 077; cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$D/db.pass")
StorageLoc=slurm_acct_db
CONF
  )
  chmod 600 /etc/slurm/slurmdbd.conf
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  [ -s /etc/munge/munge.key ] || { mungekey -c -k /etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  if ! alive /run/munge/munged.pid; then
    runuser -u munge -- /usr/sbin/munged
  fi
  wait_for 20 munge munge -n
}

start_db() {
  local sock=$D/run/mysqld.sock
  if [ ! -d "$D/mysql/mysql" ]; then
    chown -R mysql:mysql "$D/mysql"
    mariadb-install-db --user=mysql --datadir="$D/mysql" --skip-test-db >/dev/null
  fi
  chown mysql:mysql "$D/run" "$D/mysql"
  if ! alive "$D/run/mariadb.pid"; then
    setsid mariadbd --user=mysql --datadir="$D/mysql" --socket="$sock" --port=$DB_PORT \
      --bind-address=127.0.0.1 --pid-file="$D/run/mariadb.pid" --log-error="$D/log/mariadb.log" \
      </dev/null >/dev/null 2>&1 &
  fi
  wait_for 60 mariadb mariadb-admin --socket="$sock" ping
  local pass; pass=$(cat "$D/db.pass")
  mariadb --socket="$sock" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

start() {
  install_packages
  write_configs
  start_munge
  start_db
  alive "$D/run/slurmdbd.pid" || slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster llmsweep >/dev/null 2>&1 || true
  sacctmgr -i -Q add account bench Cluster=llmsweep Description=tests Organization=llmsweep >/dev/null 2>&1 || true
  sacctmgr -i -Q add user root Account=bench Cluster=llmsweep >/dev/null 2>&1 || true
  alive "$D/run/slurmctld.pid" || slurmctld
  wait_for 60 slurmctld scontrol ping
  alive "$D/run/slurmd.pid" || slurmd
  wait_for 60 "node $HOST idle" bash -c "sinfo -h -n $HOST -o %t | grep -qE '^(idle|mix|alloc)'"
  log "up: $(sinfo -h -o '%P %a %D %t %G' | tr '\n' ';')"
}

stop_pid() {  # stop_pid PIDFILE NAME
  local pidfile=$1 name=$2
  if alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    wait_for 30 "$name to stop" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
}

stop() {
  if alive "$D/run/slurmctld.pid"; then
    scancel --user=root 2>/dev/null || true
    wait_for 60 "jobs to end" bash -c '[ -z "$(squeue -h -t R,CG,PD)" ]' || true
  fi
  stop_pid "$D/run/slurmd.pid" slurmd   # before slurmctld, or slurmstepd can hang
  stop_pid "$D/run/slurmctld.pid" slurmctld
  stop_pid "$D/run/slurmdbd.pid" slurmdbd
  stop_pid "$D/run/mariadb.pid" mariadb
  stop_pid /run/munge/munged.pid munged
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
