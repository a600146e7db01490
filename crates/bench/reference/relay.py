#!/usr/bin/env python3
"""A reference chat relay, written the way a networking course writes one.

Single-threaded, Python's socket module, one blocking recvfrom loop, a dict of
members, one sendto per recipient. It speaks the classic dialect only:

    N <nick>          -> OK                  (join; no announcement to others)
    M <nick> <text>   -> "<nick>: <text>" to every member, the sender included
    Q <nick>          -> removed

udpchat-bench compares the udpchat relay against it: it shows what a simple,
correct relay costs on this machine. It is not part of udpchat.

Usage: relay.py [--bind 127.0.0.1:0]
Prints "reference relay listening on ADDR" on stdout first.
"""
import argparse
import socket
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", default="127.0.0.1:10024")
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
        sys.exit("relay.py: bind to a loopback address only")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, int(port)))
    bound = sock.getsockname()
    print(f"reference relay listening on {bound[0]}:{bound[1]}", flush=True)

    members = {}  # address -> nick
    owners = {}  # nick -> address

    while True:
        data, addr = sock.recvfrom(2048)
        try:
            line = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            continue
        cmd, _, rest = line.partition(" ")
        try:
            if cmd == "N":
                nick = rest
                if not nick or " " in nick or len(nick) > 24:
                    sock.sendto(b"ERROR nick-invalid: bad nickname", addr)
                elif owners.get(nick, addr) != addr:
                    sock.sendto(b"ERROR nick-taken: nickname in use", addr)
                else:
                    old = members.get(addr)
                    if old is not None and old != nick:
                        del owners[old]
                    members[addr] = nick
                    owners[nick] = addr
                    sock.sendto(b"OK", addr)
            elif cmd == "M":
                nick, _, text = rest.partition(" ")
                if members.get(addr) != nick:
                    sock.sendto(b"ERROR not-joined: join first", addr)
                    continue
                out = f"{nick}: {text}".encode("utf-8")
                for member in members:
                    sock.sendto(out, member)
            elif cmd == "Q":
                if members.get(addr) == rest:
                    del members[addr]
                    del owners[rest]
        except OSError:
            # ICMP port unreachable from an earlier send surfaces here; a
            # course relay just carries on.
            continue


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
