#!/usr/bin/env python3
"""Deliberately broken udpchat clients for the tests of `udpchat-conform client`.

Usage: broken_client.py HOST:PORT FAULT

FAULT is one of:
  none               a correct course client (classic: N, M; reads a name, then lines)
  trims-spaces       the course client, but it strips spaces around each line
  over-1024          the course client, but it sends a line of any length whole
  raw-control        the course client, but it prints what it receives raw
  structured         a correct minimal structured client (HELLO, SAY, RESEND, rejoin)
  never-retransmits  the structured client, but it never sends a SAY again
  no-resend          the structured client, but it never asks for missing events
  no-rejoin          the structured client, but it ignores ERROR not-joined
  unprefixed-say     the structured client, but its SAY lacks the relay's key
  keeps-cr           the course client, but a line typed with CR LF keeps its CR

Each breaks exactly one rule of PROTOCOL.md; everything else is done right,
so the kit must fail exactly the check of that rule.
"""

import os
import socket
import sys
import threading
import time

ADDR, FAULT = sys.argv[1], sys.argv[2]
HOST, PORT = ADDR.rsplit(":", 1)
RELAY = (HOST, int(PORT))
SOCK = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
SOCK.bind(("127.0.0.1", 0))


def show(data):
    """Prints a received datagram as a line: raw for raw-control, else with
    every control character replaced."""
    if FAULT == "raw-control":
        sys.stdout.buffer.write(data.rstrip(b"\n") + b"\n")
    else:
        text = data.decode("utf-8", "replace").rstrip("\n")
        clean = "".join(c if c.isprintable() else "?" for c in text)
        # As UTF-8 whatever the locale says, so CJK never stops the reader.
        sys.stdout.buffer.write((clean + "\n").encode("utf-8"))
    sys.stdout.flush()


def classic():
    name = sys.stdin.readline().rstrip("\r\n")
    SOCK.sendto(("N " + name).encode(), RELAY)
    reply, _ = SOCK.recvfrom(2048)
    if reply != b"OK":
        sys.stdout.write("refused\n")
        return

    def reader():
        while True:
            try:
                data, _ = SOCK.recvfrom(4096)
            except OSError:
                continue
            show(data)

    threading.Thread(target=reader, daemon=True).start()
    for line in sys.stdin:
        text = line.rstrip("\n") if FAULT == "keeps-cr" else line.rstrip("\r\n")
        if FAULT == "trims-spaces":
            text = text.strip()
        if not text.strip():
            continue
        if len(text.encode()) > 800 and FAULT != "over-1024":
            sys.stdout.write("too long: at most 800 bytes\n")
            sys.stdout.flush()
            continue
        SOCK.sendto(("M %s %s" % (name, text)).encode(), RELAY)


class Structured:
    def __init__(self, nick):
        self.nick = nick
        self.key = os.urandom(8).hex()
        self.relay_key = None
        self.next = None
        self.have = set()
        self.lock = threading.Lock()
        self.unconfirmed = {}  # id -> (text, last sent)
        self.id = int(time.time()) % 1000000
        self.joined = threading.Event()

    def send(self, body):
        if self.relay_key and not (FAULT == "unprefixed-say" and body.startswith("SAY ")):
            body = "@%s %s" % (self.relay_key, body)
        SOCK.sendto(body.encode(), RELAY)

    def hello(self):
        self.relay_key = None
        SOCK.sendto(("HELLO udpchat/1 %s - key=%s %s" % (self.nick, self.key, "=" * 40)).encode(), RELAY)

    def handle(self, data):
        text = data.decode("utf-8", "replace")
        if text.startswith("COOKIE "):
            cookie = text.split(" ")[1]
            SOCK.sendto(("HELLO udpchat/1 %s %s key=%s" % (self.nick, cookie, self.key)).encode(), RELAY)
            return
        if text.startswith("ERROR not-joined"):
            if FAULT != "no-rejoin":
                self.hello()
            return
        prefix = "@%s " % self.key
        if not text.startswith(prefix):
            return
        body = text[len(prefix):]
        words = body.split(" ")
        if words[0] == "WELCOME":
            self.relay_key = words[8]
            self.next = int(words[6])
            self.joined.set()
        elif words[0] == "EVENT":
            seq = int(words[1])
            if seq in self.have:
                return
            self.have.add(seq)
            if self.next is not None and seq > self.next and FAULT != "no-resend":
                self.send("RESEND %d %d" % (self.next, seq - 1))
            if self.next is not None and seq == self.next:
                while self.next in self.have:
                    self.next += 1
            rest = words[3:] if not words[3].startswith("ago=") else words[4:]
            if rest[0] == "CHAT":
                who, said = rest[1], " ".join(rest[2:])
                show(("%s: %s" % (who, said)).encode())
                if who == self.nick:
                    for i, (t, _) in list(self.unconfirmed.items()):
                        if t == said:
                            del self.unconfirmed[i]

    def run(self):
        self.hello()

        def reader():
            while True:
                try:
                    data, _ = SOCK.recvfrom(4096)
                except OSError:
                    continue
                with self.lock:
                    try:
                        self.handle(data)
                    except Exception as e:  # a bad datagram never stops the reader
                        print("dropped %r: %s" % (data, e), file=sys.stderr)

        threading.Thread(target=reader, daemon=True).start()

        def retransmitter():
            while True:
                time.sleep(0.2)
                with self.lock:
                    if FAULT == "never-retransmits":
                        continue
                    for i, (t, sent) in list(self.unconfirmed.items()):
                        if time.time() - sent > 0.5:
                            self.send("SAY %d %s" % (i, t))
                            self.unconfirmed[i] = (t, time.time())

        threading.Thread(target=retransmitter, daemon=True).start()
        self.joined.wait()
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            if not text.strip() or len(text.encode()) > 800:
                continue
            with self.lock:
                self.id += 1
                self.unconfirmed[self.id] = (text, time.time())
                self.send("SAY %d %s" % (self.id, text))
        time.sleep(3600)


STRUCTURED = ("structured", "never-retransmits", "no-resend", "no-rejoin", "unprefixed-say")
if FAULT in STRUCTURED:
    Structured(sys.argv[3] if len(sys.argv) > 3 else "pyclient").run()
else:
    classic()
