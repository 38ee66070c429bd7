#!/usr/bin/env python3
"""Regenerate the long, repetitive scenarios of this corpus (the .ep format has no loops).

Run from anywhere: `python3 scenarios/generate.py`. It rewrites exactly these files and
nothing else; `git diff` afterwards should be empty unless this script was changed.

- pipe/full-65536x1.ep, pipe/full-640x100.ep        (pipe capacity with small writes)
- nesting/path-limit-length-{2,3,4,5}.ep             (wakeup-path limits 500/100/50/10)
- nesting/path-length-1-unlimited.ep                 (paths of length 1 are not counted)
- socket-capacity/*.ep                               (model checks at the socket-buffer limit)
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(rel, lines):
    text = "\n".join(lines) + "\n"
    with open(os.path.join(HERE, rel), "w") as f:
        f.write(text)


def pipe_small_writes():
    lines = ["# name: 65,536 one-byte writes fill a default pipe (writes merge into partly-filled pages)",
             "# rule: §8 pipe — capacity 16 page-sized slots; a write merges into the last page when it fits whole",
             "# generated: 65,535 lines `write w 1`, a poll, the last write, then checks",
             "pipe r w"]
    lines += ["write w 1"] * 65535
    lines += ["poll w", "write w 1", "poll w", "write w 1", "read r 1", "poll w", "write w 1",
              "read r 4095", "poll w", "write w 4096", "write w 1"]
    write("pipe/full-65536x1.ep", lines)
    lines = ["# name: only 640 hundred-byte writes fit into a default pipe (40 per page, 4,000 bytes per page)",
             "# rule: §8 pipe — a write merges into the last partly-filled page only when it fits there whole",
             "# generated: 639 lines `write w 100`, a poll, the 640th write, then checks",
             "pipe r w"]
    lines += ["write w 100"] * 639
    lines += ["poll w", "write w 100", "poll w", "write w 100", "write w 97", "write w 96", "write w 1",
              "poll r", "read r 4000", "poll w", "write w 100"]
    write("pipe/full-640x100.ep", lines)


def layered(levels):
    """Instance names per level (a1.., b1.., ...) and the commands that build the layers:
    level 0 watches the pipe, every instance of level k+1 watches every instance of level k."""
    names = [[f"{chr(ord('a') + li)}{i}" for i in range(1, n + 1)] for li, n in enumerate(levels)]
    cmds = [f"epoll {x}" for lvl in names for x in lvl]
    data = 1
    for x in names[0]:
        cmds.append(f"ctl {x} add r in {data}")
        data += 1
    for li in range(1, len(levels)):
        for upper in names[li]:
            for lower in names[li - 1]:
                cmds.append(f"ctl {upper} add {lower} in {data}")
                data += 1
    return names, cmds


def path_limits():
    rule = "# rule: §3 ctl ADD, §9 limits — wakeup-path limits 1000/500/100/50/10; exceeded gives EINVAL"
    how = "# generated: each level's instances all watch every instance of the level below; the pipe is at the bottom"
    cases = [
        ("path-limit-length-2.ep", "wakeup paths of length 2 are limited to 500", [26, 20],
         "# 26 x 20 = 520 paths of length 2: b20 pushes the count over 500"),
        ("path-limit-length-3.ep", "wakeup paths of length 3 are limited to 100", [10, 10, 2],
         "# 10 x 10 paths through b1..b10; c1 takes 100 paths, c2 would add 10 more than the limit"),
        ("path-limit-length-4.ep", "wakeup paths of length 4 are limited to 50", [4, 4, 4, 1],
         "# 4 x 4 x 4 = 64 paths of length 4 into d1: the 4th c-instance pushes it over 50"),
        ("path-limit-length-5.ep", "wakeup paths of length 5 are limited to 10", [2, 2, 2, 2, 1],
         "# 2 x 2 x 2 x 2 = 16 paths of length 5 into e1 (chain depth 5 = the nesting limit)"),
    ]
    for fname, name, levels, note in cases:
        names, cmds = layered(levels)
        lines = [f"# name: {name}", rule, note, how, "pipe r w"] + cmds + ["write w 1"]
        lines += [f"wait {t} 8 0" for t in names[-1]]
        write(f"nesting/{fname}", lines)

    n = 1002
    lines = ["# name: wakeup paths of length 1 are not limited (1001 direct watchers pass the full path check)",
             "# rule: §3 ctl ADD, §9 limits — wakeup-path limits 1000/500/100/50/10; the spec page lists 1000 for length 1,",
             "# but the kernel (path_count_inc: \"allow an arbitrary number of depth 1 paths\") never counts them.",
             "# a pipe watched directly by a1..a1002 (plain ADDs into unwatched instances are not path-checked);",
             "# nesting a1 into `top` runs the full path check over the pipe with 1001 paths of length 1: accepted.",
             "# Generated.",
             "pipe r w", "epoll top"]
    lines += [f"epoll a{i}" for i in range(1, n + 1)]
    lines += [f"ctl a{i} add r in {i}" for i in range(1, n)]
    lines += ["ctl top add a1 in 9001", "ctl top del a1", f"ctl a{n} add r in {n}", "ctl top add a1 in 9002",
              "write w 1", "wait top 8 0", "wait a1 1 0", f"wait a{n} 1 0"]
    write("nesting/path-length-1-unlimited.ep", lines)


def socket_capacity():
    cases = [
        ("stream-4096.ep", "unix stream: writes of 4096 bytes until the send buffer is full", "stream", 4096, 11, 44),
        ("stream-1.ep", "unix stream: one-byte writes until the send buffer is full (per-message overhead)",
         "stream", 1, 70, 278),
        ("dgram-4096.ep", "unix dgram: datagrams of 4096 bytes until the send buffer is full", "dgram", 4096, 7, 26),
        ("seqpacket-4096.ep", "unix seqpacket: messages of 4096 bytes until the send buffer is full",
         "seqpacket", 4096, 7, 26),
    ]
    for fname, name, ty, size, unwritable_at, total in cases:
        lines = [f"# name: {name}",
                 "# rule: §8 unix socket — write-buffer threshold (kernel: bytes in flight x4 <= send buffer) and EAGAIN when the buffer is full",
                 "# MODEL CHECK: this scenario sits at the exact socket-buffer capacity boundary of this kernel",
                 "# (wmem_default 212992, skb truesize accounting). The engine's capacity model is approximate,",
                 "# so a mismatch here is a model deviation, not a semantic bug. Generated.",
                 f"socketpair a b {ty}"]
        for i in range(1, total + 2):
            lines.append(f"write a {size}")
            if i in (unwritable_at - 1, unwritable_at, total):
                lines.append("poll a")
        lines += ["poll b", "read b 1000000", "poll a"]
        write(f"socket-capacity/{fname}", lines)


if __name__ == "__main__":
    pipe_small_writes()
    path_limits()
    socket_capacity()
