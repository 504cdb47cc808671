#!/usr/bin/env python3
"""A loopback SMTP server for tests/it/delivery_mail.rs (aiosmtpd from PyPI).

Usage: smtp_sink.py DIR [--fail CODE]

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on a line once it
accepts connections, and writes each mail it receives to DIR/<n>.eml: an
"X-Envelope-To:" line per recipient, then the data as received. With
--fail CODE (e.g. 451 or 554) it answers every DATA with that code instead
and writes nothing. It stops when its standard input closes, so a test that
dies leaves no server behind.
"""

import os
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail):
        self.directory = directory
        self.fail = fail
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.fail:
            return f"{self.fail} refused by the test server"
        self.count += 1
        path = os.path.join(self.directory, f"{self.count}.eml")
        header = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        with open(path + ".part", "wb") as out:
            out.write(header.encode())
            out.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    directory = sys.argv[1]
    fail = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--fail" else None
    port = free_port()
    controller = Controller(Sink(directory, fail), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"PORT {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
