#!/usr/bin/python3 -IS
"""Stand-ins for sshd, ssh, scp and ssh-copy-id inside the qnetd-interop harness.

This is NOT SSH: no encryption, no authentication. It is a tiny framed protocol over TCP port 22
between the harness's own network namespaces, so that scripts written for a Proxmox VE cluster
(root SSH between the nodes and to the qnetd host) run unchanged.

  fakessh sshd --listen ADDR [--port 22] [--max-seconds N]
        The server. It runs inside a host's namespaces (started by cluster.sh with the host's
        private mounts), so every command it runs sees that host's /etc/corosync, /run, /etc/pve.
        Each connection runs one command with `bash -c` (a login-like environment, cwd /root)
        and returns its stdout, stderr and exit status.
  ssh / scp / ssh-copy-id
        The clients, chosen by the name this file is called by (cluster.sh bind-mounts it over
        /usr/bin/ssh, /usr/bin/scp and /usr/bin/ssh-copy-id inside the node namespaces). They
        accept the usual OpenSSH option syntax, but only reach the harness's hosts
        ($QI_STATE/hosts), and only as root.

Every loop is bounded: the server stops after --max-seconds, a command is killed after
QI_SSH_CMD_MAX_S (900 s), a client gives up after QI_SSH_CLIENT_MAX_S (1000 s).
"""

import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ENV_FILE = "/run/qnetd-interop.env"
T_STDIN, T_EOF, T_STDOUT, T_STDERR, T_EXIT = 0, 1, 2, 3, 4
HDR = struct.Struct(">BI")
MAX_FRAME = 1 << 20
CMD_MAX_S = int(os.environ.get("QI_SSH_CMD_MAX_S", "900"))
CLIENT_MAX_S = int(os.environ.get("QI_SSH_CLIENT_MAX_S", "1000"))
LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ------------------------------------------------------------------ framing

def send_frame(sock, lock, ftype, data=b""):
    with lock:
        sock.sendall(HDR.pack(ftype, len(data)) + data)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock):
    hdr = recv_exact(sock, HDR.size)
    if hdr is None:
        return None, None
    ftype, length = HDR.unpack(hdr)
    if length > MAX_FRAME:
        raise ValueError("frame too large")
    data = recv_exact(sock, length) if length else b""
    if data is None:
        return None, None
    return ftype, data


def recv_line(sock, limit=65536):
    buf = b""
    while not buf.endswith(b"\n"):
        if len(buf) > limit:
            raise ValueError("header line too long")
        c = sock.recv(1)
        if not c:
            return None
        buf += c
    return buf[:-1].decode("utf-8", "replace")


# ------------------------------------------------------------------ server

def slog(msg):
    sys.stderr.write("[fake-sshd %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def serve_one(conn, peer, local):
    t0 = time.time()
    lock = threading.Lock()
    proc = None
    try:
        conn.settimeout(30)
        line = recv_line(conn)
        if line is None:
            return
        hdr = json.loads(line)
        user = hdr.get("user") or "root"
        cmd = hdr.get("cmd")
        if user != "root":
            conn.sendall(b"DENY\n")
            slog("%s:%d user=%s denied (only root)" % (peer[0], peer[1], user))
            return
        conn.sendall(b"OK\n")
        conn.settimeout(None)
        home = "/root" if os.path.isdir("/root") else "/"
        env = {
            "HOME": home, "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
            "PATH": LOGIN_PATH, "LANG": "C.UTF-8",
            "SSH_CLIENT": "%s %d %d" % (peer[0], peer[1], local[1]),
            "SSH_CONNECTION": "%s %d %s %d" % (peer[0], peer[1], local[0], local[1]),
        }
        argv = ["/bin/bash", "-c", cmd] if cmd is not None else ["/bin/bash", "-l"]
        slog("%s:%d root: %s" % (peer[0], peer[1], cmd if cmd is not None else "(shell on stdin)"))
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=home, env=env,
                                start_new_session=True)

        def pump_out(stream, ftype):
            try:
                while True:
                    data = os.read(stream.fileno(), 65536)
                    if not data:
                        break
                    send_frame(conn, lock, ftype, data)
            except OSError:
                pass

        def pump_in():
            try:
                while True:
                    ftype, data = recv_frame(conn)
                    if ftype is None:
                        break
                    if ftype == T_STDIN:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    elif ftype == T_EOF:
                        break
            except (OSError, ValueError):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

        outs = [threading.Thread(target=pump_out, args=(proc.stdout, T_STDOUT), daemon=True),
                threading.Thread(target=pump_out, args=(proc.stderr, T_STDERR), daemon=True)]
        for t in outs:
            t.start()
        threading.Thread(target=pump_in, daemon=True).start()
        try:
            rc = proc.wait(timeout=CMD_MAX_S)
        except subprocess.TimeoutExpired:
            slog("command still running after %ds: killing its process group" % CMD_MAX_S)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            rc = proc.wait()
        for t in outs:           # output still buffered in the pipes (bounded wait: a
            t.join(timeout=5)    # background child that kept them open must not hang us)
        status = rc if rc >= 0 else 255
        send_frame(conn, lock, T_EXIT, struct.pack(">i", status))
        slog("%s:%d exit %d after %.1fs" % (peer[0], peer[1], status, time.time() - t0))
    except Exception as e:  # one bad connection must not stop the server
        slog("%s:%d error: %r" % (peer[0], peer[1], e))
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
    finally:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


def sshd_main(args):
    import argparse
    ap = argparse.ArgumentParser(prog="fakessh sshd")
    ap.add_argument("--listen", required=True, metavar="ADDR")
    ap.add_argument("--port", type=int, default=22)
    ap.add_argument("--max-seconds", type=int, default=12 * 3600)
    opts = ap.parse_args(args)
    listen, port, max_s = opts.listen, opts.port, opts.max_seconds
    srv = socket.socket(socket.AF_INET6 if ":" in listen else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((listen, port))
    srv.listen(32)
    srv.settimeout(1.0)
    slog("listening on %s:%d (not SSH: the qnetd-interop stand-in, no authentication)" % (listen, port))
    deadline = time.time() + max_s
    served = 0
    while time.time() < deadline and served < 1000000:
        try:
            conn, peer = srv.accept()
        except socket.timeout:
            continue
        served += 1
        threading.Thread(target=serve_one, args=(conn, peer, (listen, port)), daemon=True).start()
    slog("max lifetime reached, exiting")
    return 0


# ------------------------------------------------------------------ client side

class HarnessEnv:
    def __init__(self, prog):
        self.prog = prog
        self.vars = {}
        try:
            with open(ENV_FILE) as f:
                for line in f:
                    line = line.strip()
                    if "=" in line and not line.startswith("#"):
                        k, v = line.split("=", 1)
                        parts = shlex.split(v) if v else [""]
                        self.vars[k] = parts[0] if parts else ""
        except OSError:
            die(prog, "%s not found: this %s only works inside a qnetd-interop node" % (ENV_FILE, prog), 255)
        self.state = self.vars.get("QI_STATE", "")
        self.hosts = {}     # name -> ip
        self.ips = set()
        try:
            with open(os.path.join(self.state, "hosts")) as f:
                for line in f:
                    p = line.split()
                    if len(p) >= 2:
                        self.hosts[p[0]] = p[1]
                        self.ips.add(p[1])
        except OSError:
            pass

    def resolve(self, host):
        """-> ip, or exits like ssh does for an unknown / unreachable host."""
        h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if h in self.ips:
            return h
        if h in self.hosts:
            return self.hosts[h]
        if all(c in "0123456789." for c in h) or ":" in h:
            die(self.prog, "connect to host %s port 22: No route to host (only the harness's hosts are reachable)" % h, 255)
        die(self.prog, "Could not resolve hostname %s: Name or service not known" % h, 255)

    def pmxcfs_barrier(self):
        """With --pve: wait (bounded) until the pmxcfs stand-in has propagated the current
        /etc/pve/corosync.conf (and reloaded corosync), as the synchronous pmxcfs write would have."""
        if self.vars.get("QI_PVE") != "1":
            return
        for _ in range(100):                              # 100 x 0.2 s = 20 s at most
            try:
                pid, st = read_text(os.path.join(self.state, "pmxcfs.pid")).split()[:2]
                with open("/proc/%s/stat" % pid) as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                if rest[0] == "Z" or rest[19] != st:
                    return                                # poller gone (exited, or pid recycled)
            except (OSError, ValueError, IndexError):
                return                                    # poller not running: nothing to wait for
            try:
                with open("/etc/pve/corosync.conf", "rb") as f:
                    want = hashlib.md5(f.read()).hexdigest()
                have = read_text(os.path.join(self.state, "pmxcfs.synced")).strip()
            except OSError:
                return
            if want == have:
                return
            time.sleep(0.2)
        sys.stderr.write("%s: warning: the pmxcfs stand-in did not catch up with /etc/pve/corosync.conf in 20s\n" % self.prog)


def read_text(path):
    with open(path) as f:
        return f.read()


def die(prog, msg, rc):
    sys.stderr.write("%s: %s\n" % (prog, msg))
    sys.stderr.flush()
    os._exit(rc)


def split_user_host(spec, user):
    if spec.startswith("ssh://") or spec.startswith("scp://"):
        spec = spec[6:]
        port = None
        if "@" in spec:
            user, spec = spec.rsplit("@", 1)
        if spec.startswith("["):
            host, _, rest = spec[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        else:
            host, _, p = spec.partition(":")
            if p.isdigit():
                port = int(p)
        return user, host, port
    if "@" in spec:
        user, spec = spec.rsplit("@", 1)
    return user, spec, None


def connect(env, prog, host, port, user):
    ip = env.resolve(host)
    try:
        sock = socket.create_connection((ip, port), timeout=5)
    except ConnectionRefusedError:
        die(prog, "connect to host %s port %d: Connection refused" % (host.strip("[]"), port), 255)
    except socket.timeout:
        die(prog, "connect to host %s port %d: Connection timed out" % (host.strip("[]"), port), 255)
    except OSError as e:
        die(prog, "connect to host %s port %d: %s" % (host.strip("[]"), port, e.strerror or e), 255)
    sock.settimeout(30)
    return sock


def run_remote(env, prog, host, port, user, cmd, stdin_fd=None, stdin_bytes=None,
               out=None, err=None):
    """Run CMD (a string, or None for a shell reading stdin) on HOST. Streams stdout/stderr to
    the callables OUT/ERR (default: our own stdout/stderr). Returns the exit status."""
    sock = connect(env, prog, host, port, user)
    sock.sendall((json.dumps({"user": user, "cmd": cmd}) + "\n").encode())
    reply = recv_line(sock)
    if reply is None:
        die(prog, "Connection closed by %s port %d" % (host.strip("[]"), port), 255)
    if reply != "OK":
        die(prog, "%s@%s: Permission denied (publickey)." % (user, host.strip("[]")), 255)
    sock.settimeout(None)
    lock = threading.Lock()
    out = out or (lambda b: (sys.stdout.buffer.write(b), sys.stdout.buffer.flush()))
    err = err or (lambda b: (sys.stderr.buffer.write(b), sys.stderr.buffer.flush()))

    def feed():
        try:
            if stdin_bytes is not None:
                for i in range(0, len(stdin_bytes), 65536):
                    send_frame(sock, lock, T_STDIN, stdin_bytes[i:i + 65536])
            elif stdin_fd is not None:
                while True:
                    data = os.read(stdin_fd, 65536)
                    if not data:
                        break
                    send_frame(sock, lock, T_STDIN, data)
        except OSError:
            pass
        try:
            send_frame(sock, lock, T_EOF)
        except OSError:
            pass

    threading.Thread(target=feed, daemon=True).start()
    deadline = time.time() + CLIENT_MAX_S
    sock.settimeout(5)
    while time.time() < deadline:
        try:
            ftype, data = recv_frame(sock)
        except socket.timeout:
            continue
        except (OSError, ValueError):
            ftype = None
        if ftype is None:
            die(prog, "Connection to %s closed by remote host." % host.strip("[]"), 255)
        try:
            if ftype == T_STDOUT:
                out(data)
            elif ftype == T_STDERR:
                err(data)
            elif ftype == T_EXIT:
                sock.close()
                return struct.unpack(">i", data)[0]
        except BrokenPipeError:
            sock.close()
            return 255
    die(prog, "no answer from %s after %ds" % (host, CLIENT_MAX_S), 255)


def getopt_like(argv, argopts, flags, prog, usage):
    """BSD getopt as OpenSSH uses it: options (clustered flags, attached or separate values)
    until the first operand or `--`. Returns (opts list of (c, val), index of first operand)."""
    opts, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return opts, i + 1, True
        if not a.startswith("-") or a == "-":
            return opts, i, False
        j = 1
        while j < len(a):
            c = a[j]
            if c in argopts:
                val = a[j + 1:]
                if not val:
                    i += 1
                    if i >= len(argv):
                        sys.stderr.write("%s: option requires an argument -- %s\n%s" % (prog, c, usage))
                        os._exit(255 if prog == "ssh" else 1)
                    val = argv[i]
                opts.append((c, val))
                break
            if c in flags:
                opts.append((c, None))
                j += 1
                continue
            sys.stderr.write("%s: unknown option -- %s\n%s" % (prog, c, usage))
            os._exit(255 if prog == "ssh" else 1)
        i += 1
    return opts, i, False


def apply_o(val, st):
    k, sep, v = val.partition("=")
    if not sep:
        k, _, v = val.strip().partition(" ")
    k, v = k.strip().lower(), v.strip()
    if k == "port" and v.isdigit():
        st["port"] = int(v)
    elif k == "user" and v:
        st["user"] = v


SSH_USAGE = "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-l login_name] [-o option] [-p port] destination [command [argument ...]]\n"
SSH_ARGOPTS = "BbcDEeFIiJLlmOopQRSWw"
SSH_FLAGS = "1246AaCfGgKkMNnqsTtVvXxYy"


def ssh_main(argv):
    prog = "ssh"
    st = {"port": None, "user": None}
    stdin_null = False
    host = None
    cmd = []
    i = 0
    # OpenSSH parses options, takes the destination, then parses options again: the first
    # operand after the destination (or whatever follows `--`) starts the remote command.
    while i <= len(argv):
        opts, k, dashdash = getopt_like(argv[i:], SSH_ARGOPTS, SSH_FLAGS, prog, SSH_USAGE)
        for c, v in opts:
            if c == "l":
                st["user"] = v
            elif c == "p":
                if not v.isdigit():
                    die(prog, "Bad port '%s'" % v, 255)
                st["port"] = int(v)
            elif c == "o":
                apply_o(v, st)
            elif c == "n":
                stdin_null = True
            elif c == "V":
                sys.stderr.write("OpenSSH (qnetd-interop stand-in)\n")
                return 0
        i += k
        if host is not None and dashdash:
            cmd = argv[i:]
            break
        if host is None:
            if i >= len(argv):
                break
            host = argv[i]
            i += 1
            continue
        cmd = argv[i:]
        break
    if host is None:
        sys.stderr.write(SSH_USAGE)
        return 255
    user, hname, uport = split_user_host(host, st["user"])
    user = user or "root"
    port = st["port"] or uport or 22
    env = HarnessEnv(prog)
    env.pmxcfs_barrier()
    command = " ".join(cmd) if cmd else None
    rc = run_remote(env, prog, hname, port, user, command,
                    stdin_fd=None if stdin_null else 0, stdin_bytes=b"" if stdin_null else None)
    return rc


def scp_colon(s):
    """OpenSSH scp's colon(): index of the host/path separator, or -1 for a local path."""
    if s.startswith(":"):
        return -1
    flag = s.startswith("[")
    for i, c in enumerate(s):
        if c == "@" and s[i + 1:i + 2] == "[":
            flag = True
        if c == "]" and s[i + 1:i + 2] == ":" and flag:
            return i + 1
        if c == ":" and not flag:
            return i
        if c == "/":
            return -1
    return -1


SCP_USAGE = "usage: scp [-346ABCOpqRrsTv] [-c cipher] [-D sftp_server_path] [-F ssh_config] [-i identity_file] [-J destination] [-l limit] [-o ssh_option] [-P port] [-S program] [-X sftp_option] source ... target\n"


def scp_main(argv):
    prog = "scp"
    st = {"port": None, "user": None}
    opts, k, _ = getopt_like(argv, "cDFiJloPSX", "346ABCOpqRrsTv", prog, SCP_USAGE)
    for c, v in opts:
        if c == "P":
            if not v.isdigit():
                die(prog, "Bad port '%s'" % v, 1)
            st["port"] = int(v)
        elif c == "o":
            apply_o(v, st)
        elif c == "r":
            die(prog, "-r (recursive copy) is not supported by the qnetd-interop stand-in", 1)
        elif c == "3":
            die(prog, "-3 is not supported by the qnetd-interop stand-in", 1)
    ops = argv[k:]
    if len(ops) < 2:
        sys.stderr.write(SCP_USAGE)
        return 1
    target, sources = ops[-1], ops[:-1]
    env = None
    tcol = scp_colon(target)
    if tcol >= 0 or any(scp_colon(s) >= 0 for s in sources):
        env = HarnessEnv(prog)
        env.pmxcfs_barrier()
    errors = 0

    def remote(spec, col):
        user, host, port = split_user_host(spec[:col], st["user"])
        path = spec[col + 1:]
        return user or "root", host, st["port"] or port or 22, path

    if tcol < 0 and len(sources) > 1 and not os.path.isdir(target):
        die(prog, "%s: Not a directory" % target, 1)
    for src in sources:
        scol = scp_colon(src)
        if scol >= 0 and tcol >= 0:
            sys.stderr.write("scp: remote to remote copies are not supported by the qnetd-interop stand-in\n")
            errors += 1
        elif tcol >= 0:                                   # upload
            user, host, port, rpath = remote(target, tcol)
            try:
                if os.path.isdir(src):
                    sys.stderr.write("scp: omitting directory \"%s\"\n" % src)
                    errors += 1
                    continue
                with open(src, "rb") as f:
                    data = f.read()
            except OSError as e:
                sys.stderr.write("scp: stat local \"%s\": %s\n" % (src, e.strerror))
                errors += 1
                continue
            rq = shlex.quote(rpath or ".")
            base = shlex.quote(os.path.basename(src))
            cmd = ("t=%s; if [ -d \"$t\" ]; then t=\"${t%%/}/\"%s; fi; "
                   "cat > \"$t\" || { echo \"scp: dest open \\\"$t\\\": failed\" >&2; exit 1; }" % (rq, base))
            rc = run_remote(env, prog, host, port, user, cmd, stdin_bytes=data)
            if rc != 0:
                errors += 1
        elif scol >= 0:                                   # download
            user, host, port, rpath = remote(src, scol)
            rq = shlex.quote(rpath or ".")
            chunks = []
            cmd = ("f=%s; if [ -d \"$f\" ]; then echo \"scp: $f: not a regular file\" >&2; exit 1; fi; "
                   "if [ ! -r \"$f\" ]; then echo \"scp: $f: No such file or directory\" >&2; exit 1; fi; "
                   "exec cat -- \"$f\"" % rq)
            rc = run_remote(env, prog, host, port, user, cmd, stdin_bytes=b"", out=chunks.append)
            if rc != 0:
                errors += 1
                continue
            dst = target
            if os.path.isdir(dst):
                dst = os.path.join(dst, os.path.basename(rpath.rstrip("/")))
            try:
                with open(dst, "wb") as f:
                    f.write(b"".join(chunks))
            except OSError as e:
                sys.stderr.write("scp: open local \"%s\": %s\n" % (dst, e.strerror))
                errors += 1
        else:                                             # local to local, as scp runs cp
            try:
                dst = target
                if os.path.isdir(dst):
                    dst = os.path.join(dst, os.path.basename(src.rstrip("/")))
                shutil.copy(src, dst)
            except OSError as e:
                sys.stderr.write("cp: cannot copy '%s' to '%s': %s\n" % (src, target, e.strerror))
                errors += 1
    return 1 if errors else 0


def ssh_copy_id_main(argv):
    prog = "ssh-copy-id"
    usage = "Usage: /usr/bin/ssh-copy-id [-h|-?|-f|-n|-s|-x] [-i [identity_file]] [-t target_path] [-F ssh_config] [[-o <ssh -o options>] ...] [-p port] [user@]hostname\n"
    st = {"port": None, "user": None}
    opts, k, _ = getopt_like(argv, "iFtop", "fnsxh?", prog, usage)
    for c, v in opts:
        if c == "p" and v.isdigit():
            st["port"] = int(v)
        elif c == "o":
            apply_o(v, st)
        elif c in "h?":
            sys.stderr.write(usage)
            return 0
    if k >= len(argv):
        sys.stderr.write(usage)
        return 1
    user, host, uport = split_user_host(argv[k], st["user"])
    env = HarnessEnv(prog)
    rc = run_remote(env, prog, host, st["port"] or uport or 22, user or "root", "true", stdin_bytes=b"")
    if rc != 0:
        return 1
    sys.stderr.write("/usr/bin/ssh-copy-id: INFO: qnetd-interop stand-in: %s is reachable; no key installed "
                     "(the harness's fake sshd does not authenticate)\n" % host)
    return 0


def main():
    name = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if name in ("fakessh", "fakessh.py") and args:
        name, args = args[0], args[1:]
    if name == "sshd":
        return sshd_main(args)
    if name == "ssh":
        return ssh_main(args)
    if name == "scp":
        return scp_main(args)
    if name == "ssh-copy-id":
        return ssh_copy_id_main(args)
    sys.stderr.write("fakessh: called as '%s'; use sshd|ssh|scp|ssh-copy-id\n" % name)
    return 2


if __name__ == "__main__":
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
