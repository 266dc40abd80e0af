#!/bin/bash
# pvecm-sim.sh -- a re-enactment of Proxmox VE's `pvecm qdevice setup QNETD_IP` for the
# qnetd-interop harness: the steps of setup_qdevice (proxmox/pve-cluster, src/PVE/CLI/pvecm.pm)
# in the same order, with the same commands and argv shapes, on a cluster started with
# `cluster.sh up --no-device --pve` (and --qnetd-sshd, since pvecm needs root ssh to the qnetd host).
#
#   bash pvecm-sim.sh [--force] QNETD_IP          (as root, on one node)
#
# It proves that the harness's Proxmox stand-in gives such a command what a PVE cluster gives it:
# /etc/pve shared by all nodes, root ssh/scp to every member (/usr/bin/ssh, as PVE::SSHInfo
# calls it) and to the qnetd host (bare ssh/scp), systemctl, and pmxcfs propagating
# /etc/pve/corosync.conf. It is not pvecm: no PVE Perl modules, no real pmxcfs lock (a mkdir in
# /etc/pve/priv/lock, as PVE::Cluster::cfs_lock does, without pmxcfs's lock semantics), members
# and their online state come from the nodelist of /etc/pve/corosync.conf and the corosync
# membership (pmxcfs's view of the same). One deliberate difference: pvecm refuses an odd node
# count unless --force; this script always goes on, with algorithm lms (as --force would).
# corosync.conf is rewritten by a port of PVE::Corosync::parse_conf/write_conf (sorted keys,
# two-space indent), with config_version + 1, through corosync.conf.new and a rename.
set -u -o pipefail

# die, run, run_noerr (PVE::Tools::run_command) and pair_args
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# the same with run_command's outfunc: every stdout line prefixed "node 'NAME': "
run_node() { # NODE NOERR CMD...
    local node=$1 noerr=$2 rc; shift 2
    "$@" | sed -u "s/^/node '$node': /"; rc=$?
    [ $rc = 0 ] || [ "$noerr" = 1 ] || die "command '$*' failed: exit code $rc"
    return 0
}

# a port of PVE::Corosync::parse_conf / write_conf (perl, core modules only)
# shellcheck disable=SC2016
PVE_CONF_PL='
use strict; use warnings;
my ($mode, $file, @args) = @ARGV;
open(my $fh, "<", $file) or die "unable to open $file - $!\n";
my $raw = do { local $/; <$fh> }; close($fh);
$raw =~ s/#.*$//mg; $raw =~ s/\r?\n/ /g; $raw =~ s/\s+/ /g; $raw =~ s/^\s+//; $raw =~ s/\s*$//;
my @tokens = split(/\s/, $raw);
my %array = (node => 1, interface => 1);
my $conf = {}; my @stack; my $section = $conf;
while (defined(my $token = shift @tokens)) {
    my $next = $tokens[0];
    if ($next && $next eq "{") {
        shift @tokens;
        my $new = {};
        if ($array{$token}) { push @{ $section->{$token} //= [] }, $new; }
        elsif (!defined($section->{$token})) { $section->{$token} = $new; }
        else { die "section $token already exists and not marked as array!\n"; }
        push @stack, $section; $section = $new; next;
    }
    if ($token eq "}") { $section = pop @stack; die "parse error - unexpected }\n" if !$section; next; }
    my $key = $token;
    die "missing : after key $key\n" if !($key =~ s/:$//);
    die "parse error - no value for $key\n" if !defined($next);
    $section->{$key} = shift @tokens;
}
# the nodelist and interfaces are hashes in PVE (keyed by name / linknumber) and written sorted
my @nodes = sort { ($a->{name} // $a->{ring0_addr} // "") cmp ($b->{name} // $b->{ring0_addr} // "") }
    @{ $conf->{nodelist}->{node} // [] };
$conf->{nodelist}->{node} = \@nodes if $conf->{nodelist};
if ($conf->{totem} && $conf->{totem}->{interface}) {
    $conf->{totem}->{interface} = [ sort { ($a->{linknumber} // $a->{ringnumber} // "") cmp ($b->{linknumber} // $b->{ringnumber} // "") }
        @{ $conf->{totem}->{interface} } ];
}
sub dump_section {
    my ($s, $prefix) = @_;
    my $out = "";
    foreach my $k (sort keys %$s) {
        my $v = $s->{$k};
        if (ref($v) eq "HASH") {
            $out .= "$prefix$k {\n" . dump_section($v, "$prefix  ") . "$prefix}\n";
            $out .= "\n" if !$prefix;
        } elsif (ref($v) eq "ARRAY") {
            $out .= "$prefix$k {\n" . dump_section($_, "$prefix  ") . "$prefix}\n" for @$v;
        } else {
            die "got undefined value for key $k!\n" if !defined($v);
            $out .= "$prefix$k: $v\n";
        }
    }
    return $out;
}
if ($mode eq "members") {
    printf "%s %s %s\n", $_->{name} // $_->{ring0_addr}, $_->{nodeid} // "", $_->{ring0_addr} // "" for @nodes;
} elsif ($mode eq "get") {
    my $v = $conf;
    for my $p (split /\./, $args[0]) { exit 1 if ref($v) ne "HASH" || !defined($v->{$p}); $v = $v->{$p}; }
    print ref($v) ? "(section)\n" : "$v\n";
} elsif ($mode eq "add-device") {
    my ($addr, $algorithm) = @args;
    my $quorum = $conf->{quorum} //= {};
    die "Qdevice already configured, must be removed before setting up new one!\n" if defined($quorum->{device});
    my $dev = { model => "net", net => { tls => "on", host => $addr, algorithm => $algorithm } };
    $dev->{votes} = 1 if $algorithm eq "ffsplit";
    $quorum->{device} = $dev;
    die "invalid corosync config: unable to read config version\n" if !defined($conf->{totem}->{config_version});
    $conf->{totem}->{config_version}++;
    print dump_section($conf, "");
} else { die "unknown mode $mode\n"; }
'
pve_conf() { perl -e "$PVE_CONF_PL" "$@"; }

pair_args pvecm-sim.sh "$@"
export HOME=/root                           # pvecm.pm: $ENV{HOME} = '/root' (for ssh-copy-id)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin   # PVE::CLIHandler forces this PATH

clusterconf=/etc/pve/corosync.conf
[ -f "$clusterconf" ] || die "Error: Corosync config '$clusterconf' does not exist - is this node part of a cluster?"

# PVE::Cluster::get_members: the nodelist, online = in the corosync membership
members=$(pve_conf members "$clusterconf") || die "cannot parse $clusterconf"
online=" $(corosync-cmapctl runtime.members. 2>/dev/null | sed -n 's/^runtime\.members\.\([0-9]*\)\.status ([^)]*) = joined$/\1/p' | tr '\n' ' ')"
nmembers=0
while read -r node nodeid ip; do
    [ -n "$node" ] || continue
    nmembers=$((nmembers + 1))
    [[ $online == *" $nodeid "* ]] || die "All nodes must be online! Node $node is offline, aborting."
done <<< "$members"
[ "$nmembers" -gt 0 ] || die "no members in $clusterconf"

if pve_conf get "$clusterconf" quorum.device > /dev/null && [ $force = 0 ]; then
    die "QDevice already configured!"
fi

model=net
algorithm=ffsplit
if [ $((nmembers % 2)) = 1 ]; then
    echo "NOTE: $nmembers nodes: pvecm says 'Clusters with an odd node count are not officially supported!' without --force; going on with lms, as --force does"
    algorithm=lms
fi

qnetd_addr=$addr
base_dir=/etc/corosync/qdevice/net
db_dir_qnetd=/etc/corosync/qnetd/nssdb
db_dir_node=$base_dir/nssdb
ca_export_base=qnetd-cacert.crt
ca_export_file=$db_dir_qnetd/$ca_export_base
crq_file_base=qdevice-net-node.crq
p12_file_base=qdevice-net-node.p12
qdevice_certutil=corosync-qdevice-net-certutil
qnetd_certutil=corosync-qnetd-certutil
clustername=$(pve_conf get "$clusterconf" totem.cluster_name) || die "no totem.cluster_name in $clusterconf"

run ssh-copy-id -i /root/.ssh/id_rsa "root@$qnetd_addr" < /dev/null

if [ -d "$db_dir_node" ]; then
    # FIXME (pvecm): check on all nodes?!
    if [ $force = 1 ]; then rm -rf "$db_dir_node"
    else die "QDevice certificate store already initialised, set force to delete!"; fi
fi

ssh_cmd=(ssh -o BatchMode=yes -lroot)
scp_cmd=(scp -o BatchMode=yes)

# PVE::SSHInfo::ssh_info_to_command({ ip => $ip, name => $node }) followed by '--'
ssh_cluster_cmd() { # NODE IP
    local opts=(-o BatchMode=yes -o "HostKeyAlias=$1")
    [ -f "/etc/pve/nodes/$1/ssh_known_hosts" ] \
        && opts+=(-o "UserKnownHostsFile=/etc/pve/nodes/$1/ssh_known_hosts" -o GlobalKnownHostsFile=none)
    printf '%s\0' /usr/bin/ssh -e none "${opts[@]}" "root@$2" --
}
foreach_member() { # FUNC : FUNC NODE IP for every member, sorted by name
    local node nodeid ip
    while read -r node nodeid ip; do
        [ -n "$node" ] || continue
        [ -n "$ip" ] || die "cannot get the cluster IP for node '$node'."
        "$1" "$node" "$ip" || return 1
    done <<< "$members"
}

echo; echo "INFO: initializing qnetd server"
run_noerr "${ssh_cmd[@]}" "$qnetd_addr" "$qnetd_certutil" -i < /dev/null

echo; echo "INFO: copying CA cert and initializing on all nodes"
run "${scp_cmd[@]}" "root@[$qnetd_addr]:$ca_export_file" "/etc/pve/$ca_export_base"
init_ca() {
    local sc; mapfile -d '' -t sc < <(ssh_cluster_cmd "$1" "$2")
    run_node "$1" 1 "${sc[@]}" "$qdevice_certutil" -i -c "/etc/pve/$ca_export_base" < /dev/null
}
foreach_member init_ca
rm -f "/etc/pve/$ca_export_base"

echo; echo "INFO: generating cert request"
run "$qdevice_certutil" -r -n "$clustername"

echo; echo "INFO: copying exported cert request to qnetd server"
run "${scp_cmd[@]}" "$db_dir_node/$crq_file_base" "root@[$qnetd_addr]:/tmp"

echo; echo "INFO: sign and export cluster cert"
run "${ssh_cmd[@]}" "$qnetd_addr" "$qnetd_certutil" -s -c "/tmp/$crq_file_base" -n "$clustername" < /dev/null

echo; echo "INFO: copy exported CRT"
run "${scp_cmd[@]}" "root@[$qnetd_addr]:$db_dir_qnetd/cluster-$clustername.crt" "$db_dir_node"

echo; echo "INFO: import certificate"
run "$qdevice_certutil" -M -c "$db_dir_node/cluster-$clustername.crt"

echo; echo "INFO: copy and import pk12 cert to all nodes"
run "${scp_cmd[@]}" "$db_dir_node/$p12_file_base" /etc/pve/
import_p12() {
    local sc; mapfile -d '' -t sc < <(ssh_cluster_cmd "$1" "$2")
    run_node "$1" 0 "${sc[@]}" "$qdevice_certutil" -m -c "/etc/pve/$p12_file_base" < /dev/null
}
foreach_member import_p12
rm -f "/etc/pve/$p12_file_base"

# PVE::Cluster::cfs_lock_file('corosync.conf', 10, $code): mkdir-based lock in /etc/pve/priv/lock
echo; echo "INFO: add QDevice to cluster configuration"
lockdir=/etc/pve/priv/lock
lockid=file-corosync_conf
mkdir "$lockdir" 2>/dev/null
[ -d "$lockdir" ] || die "pve cluster filesystem not online."
tries=0
until mkdir "$lockdir/$lockid" 2>/dev/null; do
    tries=$((tries + 1))
    [ $tries -ge 100 ] && die "cfs-lock '$lockid' error: got lock request timeout"
    [ $((tries % 10)) = 0 ] && echo "trying to acquire cfs lock '$lockid' ..." >&2
    sleep 0.1
done
write_conf() {
    # PVE::Corosync::atomic_write_conf: config_version + 1, write corosync.conf.new, rename
    pve_conf add-device "$clusterconf" "$qnetd_addr" "$algorithm" > /etc/pve/corosync.conf.new || return 1
    mv -f /etc/pve/corosync.conf.new "$clusterconf" || { echo "activating corosync.conf.new failed" >&2; return 1; }
}
write_conf; rc=$?
rmdir "$lockdir/$lockid"
[ $rc = 0 ] || { rm -f /etc/pve/corosync.conf.new; die "cfs-lock '$lockid' error: writing the QDevice configuration failed"; }

start_enable() {
    local sc; mapfile -d '' -t sc < <(ssh_cluster_cmd "$1" "$2")
    echo; echo "INFO: start and enable corosync qdevice daemon on node '$1'..."
    run_node "$1" 0 "${sc[@]}" systemctl start corosync-qdevice < /dev/null
    run_node "$1" 0 "${sc[@]}" systemctl enable corosync-qdevice < /dev/null
}
foreach_member start_enable

run corosync-cfgtool -R   # do cluster wide config reload
echo; echo "INFO: pvecm-sim.sh: QDevice $qnetd_addr set up ($model, $algorithm, $nmembers nodes)"
