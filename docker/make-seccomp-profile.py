#!/usr/bin/env python3
"""make-seccomp-profile.py - funcmond's seccomp profile: the container runtime's default
profile plus exactly the three io_uring calls funcmond's event loop uses.

Why: Docker >= 25, containerd 2 and podman refuse io_uring_setup/enter/register in their
default profiles. funcmond drains segments with io_uring where it may; a profile that adds
only those three calls keeps every other restriction of the default. The profile is derived,
not written by hand, so it follows the runtime's default; the default profile comes from
containers/common (Apache-2.0), and so does the generated file.

Usage: make-seccomp-profile.py [DEFAULT [OUTPUT]]
  DEFAULT  the runtime's default profile (default /usr/share/containers/seccomp.json, from
           Debian's golang-github-containers-common, installed with podman)
  OUTPUT   where to write the profile (default: standard output)
With --check OUTPUT, compares instead of writing: exit 0 when OUTPUT is the default plus the
three calls, 1 when not, 77 (the test suite's "skipped") when the default is not installed.
"""
import json
import os
import sys

DEFAULT_PROFILE = "/usr/share/containers/seccomp.json"
IO_URING_CALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def is_plain_allow_rule(rule):
    """The unconditional allow list: no argument filters, no arch or capability limits."""
    return (rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args")
            and not rule.get("includes") and not rule.get("excludes"))


def with_io_uring(profile):
    """The profile with the io_uring calls added to its unconditional allow list."""
    for rule in profile.get("syscalls", []):
        named = set(rule.get("names", []))
        if named.intersection(IO_URING_CALLS) and not is_plain_allow_rule(rule):
            raise ValueError("the default profile has a conditional rule for io_uring: "
                             "review it by hand")
    for rule in profile.get("syscalls", []):
        if is_plain_allow_rule(rule):
            rule["names"] = sorted(set(rule["names"]).union(IO_URING_CALLS))
            return profile
    raise ValueError("the default profile has no unconditional SCMP_ACT_ALLOW rule")


def main(argv):
    check = len(argv) > 1 and argv[1] == "--check"
    args = argv[2:] if check else argv[1:]
    if check and len(args) != 1:
        print("usage: make-seccomp-profile.py --check OUTPUT", file=sys.stderr)
        return 2
    source = DEFAULT_PROFILE if check or not args else args[0]
    if check and not os.path.exists(source):
        print(f"SKIP: {source} is not installed (podman's containers-common ships it)", file=sys.stderr)
        return 77
    try:
        with open(source, encoding="utf-8") as f:
            expected = with_io_uring(json.load(f))
    except (OSError, ValueError) as e:
        print(f"make-seccomp-profile: {source}: {e}", file=sys.stderr)
        return 2
    if check:
        with open(args[0], encoding="utf-8") as f:
            committed = json.load(f)
        if committed != expected:
            print(f"make-seccomp-profile: {args[0]} is not {source} plus "
                  f"{', '.join(IO_URING_CALLS)}: regenerate it", file=sys.stderr)
            return 1
        return 0
    text = json.dumps(expected, indent="\t") + "\n"
    if len(args) > 1:
        with open(args[1], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
