#!/usr/bin/env bash
# The manual pages docs/man/jobq-server.1 and docs/man/jobq.1: each renders
# with groff (and man, when installed) without a single warning, and each
# documents what its program's --help lists, so that the pages cannot drift
# from the programs: every flag (--name) as the tag of an item (.TP) or in a
# .SS heading, every command of jobq as a .SS heading, every JOBQ_* variable.
#
#   tests/cli/man_pages.sh [PATH/TO/jobq-server|NOT_BUILT [PATH/TO/jobq|NOT_BUILT]]
# A program that is not built has its page rendered but not compared. Without
# groff (Debian groff-base, in tests/deps.sh): exit 77, skipped.
set -uo pipefail

server=${1:-NOT_BUILT}
cli=${2:-NOT_BUILT}
src=${JOBQ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
man_dir=$src/docs/man
if ! command -v groff > /dev/null; then
  echo "SKIP: no groff (Debian groff-base)"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# render PAGE: no warning from groff -ww (all warnings) nor from man.
render() {
  local page=$1
  checks=$((checks + 1))
  if [ ! -f "$page" ]; then
    bad "no page $page"
    return
  fi
  if ! LC_ALL=C.UTF-8 groff -man -ww -z "$page" > "$tmp/groff.out" 2>&1 || [ -s "$tmp/groff.out" ]; then
    bad "groff -man -ww on $page: $(head -c 1000 "$tmp/groff.out")"
  fi
  if command -v man > /dev/null; then
    checks=$((checks + 1))
    if ! MANWIDTH=80 man --warnings -E UTF-8 -l "$page" > "$tmp/man.txt" 2> "$tmp/man.err" ||
      [ -s "$tmp/man.err" ]; then
      bad "man --warnings on $page: $(head -c 1000 "$tmp/man.err")"
    elif [ "$(wc -l < "$tmp/man.txt")" -lt 50 ]; then
      bad "man renders $page in $(wc -l < "$tmp/man.txt") lines"
    fi
  fi
}

# covers PROGRAM PAGE: what PROGRAM --help lists is documented in PAGE.
covers() {
  local prog=$1 page=$2
  checks=$((checks + 1))
  if ! "$prog" --help > "$tmp/help.txt" 2>&1; then
    bad "$prog --help failed: $(head -c 300 "$tmp/help.txt")"
    return
  fi
  python3 - "$tmp/help.txt" "$page" "$(basename "$prog")" <<'PY' || bad "$page does not cover $prog --help (above)"
import re, sys
help_text = open(sys.argv[1]).read()
page = open(sys.argv[2]).read()
prog = sys.argv[3]

def plain(line):
    """A roff line as it reads: escapes and font changes out, quotes of macro arguments out."""
    line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\(dq", '"').replace("\\e", "\\")
    line = re.sub(r"\\f[BIRP]", "", line)
    return line

lines = page.split("\n")
tags, heads = [], []
for i, l in enumerate(lines):
    if l.startswith(".TP") and i + 1 < len(lines):
        tags.append(plain(lines[i + 1]))
    elif l.startswith(".SS"):
        heads.append(plain(l))
items = " ".join(tags + heads)
text = plain(page)
missing = []
for flag in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))):
    if not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", items):
        missing.append("flag " + flag + " (not the tag of an item)")
for var in sorted(set(re.findall(r"JOBQ_[A-Z_]*[A-Z]_?", help_text))):
    if var not in text:
        missing.append("variable " + var)
if prog == "jobq":
    # The commands: the first word of each synopsis line, and each word after " | ".
    # The synopsis block runs from "usage:" to the line "  --help".
    cmds = set()
    for l in help_text.split("\n")[1:]:
        if l.strip() == "--help":
            break
        m = re.match(r"^  ([a-z]+) ", l)
        if m:
            cmds.add(m.group(1))
            cmds.update(re.findall(r"\| ([a-z]+)(?= )", l))
    for c in sorted(cmds):
        if not any(re.match(r'^\.SS "?' + c + r"\b", l) for l in lines):
            missing.append("command " + c + " (no .SS heading)")
    if len(cmds) < 10:
        missing.append("only %d commands found in --help: %s" % (len(cmds), sorted(cmds)))
for m in missing:
    print("  missing from %s: %s" % (sys.argv[2], m))
sys.exit(1 if missing else 0)
PY
}

render "$man_dir/jobq-server.1"
render "$man_dir/jobq.1"
if [ "$server" != NOT_BUILT ]; then
  covers "$server" "$man_dir/jobq-server.1"
else
  echo "note: jobq-server is not built; its page was rendered, not compared"
fi
if [ "$cli" != NOT_BUILT ]; then
  covers "$cli" "$man_dir/jobq.1"
else
  echo "note: jobq is not built; its page was rendered, not compared"
fi

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
