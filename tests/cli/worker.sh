#!/usr/bin/env bash
# jobq worker --config FILE: the pipelines a configuration file names run in
# a worker process on a SQLite file, as beside a `jobq-server --submit-only`.
# Offline: the template script, espeak-ng voices and a local directory. A
# podcast job submitted with `jobq submit` succeeds with an audio file, in
# both forms of the file ({"pipelines": {KIND: STAGES}} and STAGES alone, the
# kind podcast), and a second kind of the same file runs beside it. A bad
# command line or a bad file is exit 2 with a sentence that names what is
# wrong, before the queue is opened (no database is created).
#
#   tests/cli/worker.sh [PATH/TO/jobq [espeak|no-espeak]]
# CTest passes NOT_BUILT when the jobq program is not built (no examples, or
# no libjobq-stages): then exit 77, skipped. Without espeak-ng (no-espeak)
# only the refusals are checked, and the test reports itself skipped.
set -uo pipefail

jobq=${1:-${JOBQ_BINARY_DIR:-build}/examples/jobq}
espeak=${2:-espeak}
if [ "$jobq" = NOT_BUILT ]; then
  echo "SKIP: the jobq program is not built (JOBQ_BUILD_EXAMPLES=OFF or JOBQ_WITH_STAGES=OFF)"
  exit 77
fi
jobq=$(cd "$(dirname "$jobq")" && pwd)/$(basename "$jobq")

tmp=$(mktemp -d)
worker=
cleanup() {
  if [ -n "$worker" ]; then kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp" || exit 1
unset JOBQ_WEBHOOK_ALLOW
for v in $(env | sed -n 's/^\(JOBQ_WEBHOOK_SECRET_[^=]*\)=.*/\1/p'); do unset "$v"; done
export JOBQ_STORAGE=sqlite:$tmp/q.db

failures=0
checks=0
bad() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# ---- refusals: exit 2, the sentence on stderr, no database ------------------

# refused EXPECTED_STDERR_TEXT ARGS...
refused() {
  local want=$1
  shift
  local rc=0
  JOBQ_STORAGE=sqlite:$tmp/fresh.db "$jobq" "$@" < /dev/null > out.txt 2> err.txt || rc=$?
  checks=$((checks + 1))
  if [ "$rc" -ne 2 ]; then
    bad "jobq $*: exit $rc, not 2 (stderr: $(head -c 300 err.txt))"
  elif ! grep -qF -- "$want" err.txt; then
    bad "jobq $*: stderr does not say \"$want\": $(head -c 300 err.txt)"
  elif [ -s out.txt ]; then
    bad "jobq $*: printed on stdout: $(head -c 300 out.txt)"
  fi
  if [ -e "$tmp/fresh.db" ]; then
    bad "jobq $*: created the database"
    rm -f "$tmp"/fresh.db*
  fi
}

# conf NAME TEXT: writes the configuration file NAME.
conf() { printf '%s\n' "$2" > "$1"; }

T='{"provider": "template"}'
conf good-script.json "{\"pipelines\": {\"digest\": {\"script\": $T}}}"

refused "worker: needs --config FILE" worker
refused "worker: needs --config FILE" worker --workers 2
refused "worker: --config needs a value" worker --config
refused "worker: --config needs a value" worker --config --for 10
refused "worker: unexpected argument 'podcast' (the kinds come from --config FILE)" \
  worker podcast --config good-script.json
refused "worker: unknown option '--kind'" worker --config good-script.json --kind podcast
refused "--workers takes an integer in 1..1024, not '0'" worker --config good-script.json --workers 0
refused "--workers takes an integer in 1..1024, not 'many'" worker --config good-script.json --workers many
refused "--for takes milliseconds, 0..315360000000 (ten years), not '5s'" \
  worker --config good-script.json --for 5s
refused "usage: jobq worker --config FILE [--workers N] [--for MS]" worker

refused "worker: missing.json: cannot read the configuration: No such file or directory" \
  worker --config missing.json
mkdir adir
refused "worker: adir: cannot read the configuration: Is a directory" worker --config adir
conf broken.json '{"script": '
refused "worker: broken.json: not valid JSON: " worker --config broken.json
conf dup.json "{\"script\": $T, \"script\": $T}"
refused "worker: dup.json: not valid JSON: duplicate object key" worker --config dup.json
conf list.json "[$T]"
refused "worker: list.json: the configuration must be a JSON object" worker --config list.json
conf empty.json '{}'
refused "worker: empty.json: pipeline 'podcast' has no stages" worker --config empty.json
conf typo.json "{\"scirpt\": $T}"
refused "worker: typo.json: pipeline 'podcast': jobq_pipeline_add_config: unknown member 'scirpt' (script, tts or upload)" \
  worker --config typo.json
conf provider.json '{"script": {"provider": "nope"}}'
refused "worker: provider.json: pipeline 'podcast': jobq_pipeline_add_config: script: unknown provider 'nope'" \
  worker --config provider.json
conf upload.json '{"upload": {"provider": "local"}}'
refused "worker: upload.json: pipeline 'podcast': jobq_pipeline_add_config: " worker --config upload.json
conf nopipes.json '{"pipelines": {}}'
refused "worker: nopipes.json: \"pipelines\" must be an object that names at least one pipeline" \
  worker --config nopipes.json
conf pipeslist.json "{\"pipelines\": [$T]}"
refused "worker: pipeslist.json: \"pipelines\" must be an object" worker --config pipeslist.json
conf beside.json "{\"pipelines\": {\"digest\": {\"script\": $T}}, \"storage\": \"sqlite:x.db\"}"
refused "worker: beside.json: unknown member 'storage' beside \"pipelines\"" worker --config beside.json
conf kind.json "{\"pipelines\": {\"pod cast\": {\"script\": $T}}}"
refused "worker: kind.json: pipeline kind 'pod cast' has ' ' at offset 3" worker --config kind.json
conf kind2.json "{\"pipelines\": {\"-podcast\": {\"script\": $T}}}"
refused "worker: kind2.json: pipeline kind '-podcast' must start with a letter or a digit" \
  worker --config kind2.json
conf stages.json '{"pipelines": {"digest": "template"}}'
refused "worker: stages.json: pipeline 'digest' must be an object of stages" worker --config stages.json
# The second pipeline is bad: the first one, good, does not start either.
conf second.json "{\"pipelines\": {\"digest\": {\"script\": $T}, \"other\": {\"tts\": {\"provider\": \"nope\"}}}}"
refused "worker: second.json: pipeline 'other': jobq_pipeline_add_config: tts: unknown provider 'nope'" \
  worker --config second.json
# The webhook endpoints come from the environment, as for `jobq work`.
JOBQ_WEBHOOK_ALLOW='not an address' refused "jobq: JOBQ_WEBHOOK_ALLOW: " \
  worker --config good-script.json --for 0
JOBQ_WEBHOOK_SECRET_PODCAST=not-a-secret refused "jobq: JOBQ_WEBHOOK_SECRET_PODCAST: " \
  worker --config good-script.json --for 0

if [ "$espeak" != espeak ]; then
  echo "$checks checks, $failures failures"
  [ "$failures" -eq 0 ] || exit 1
  echo "SKIP: no espeak-ng in this build: the podcast pipeline was not run"
  exit 77
fi

# ---- the pipelines run ------------------------------------------------------

text='{"title": "Small bridges", "text": "Counties must inspect small bridges every four years. A weak bridge gets a weight limit of ten tons until it is repaired."}'

# check_podcast ID DIR: the job succeeded with progress 100 "Done", and its
# audioUrl is a WAV file in DIR, named after the job, as long as its
# audioDuration says.
check_podcast() {
  local id=$1 dir=$2
  checks=$((checks + 1))
  if ! "$jobq" get "$id" < /dev/null > job.json; then
    bad "jobq get $id failed"
    return
  fi
  python3 - "$id" "$dir" <<'PY' || bad "podcast job $id: $(head -c 800 job.json)"
import json, os, sys, wave
id, d = sys.argv[1], sys.argv[2]
j = json.load(open("job.json"))
assert j["state"] == "succeeded" and j["progress"] == 100 and j["step"] == "Done", j["state"]
r = j["result"]
url = r["audioUrl"]
path = os.path.join(os.path.realpath(d), id + ".wav")
assert url == "file://" + path, (url, path)
with wave.open(path) as w:
    secs = w.getnframes() / w.getframerate()
assert w.getnchannels() == 1 and secs > 3 and abs(secs - r["audioDuration"]) < 0.05, secs
assert r["transcript"].startswith("Alex: Welcome back!"), r["transcript"][:80]
assert [t["speaker"] for t in r["dialogue"]][:2] == ["Alex", "Sam"]
PY
}

# 1. {"pipelines": ...}: a podcast and a digest (the script alone) from one
# file, submitted before the worker starts.
conf pipes.json "{\"pipelines\": {
  \"podcast\": {\"script\": $T, \"tts\": {\"provider\": \"espeak\", \"pause_ms\": 100},
              \"upload\": {\"provider\": \"local\", \"dir\": \"$tmp/pods\"}},
  \"digest\": {\"script\": {\"provider\": \"template\", \"hosts\": [\"Ana\", \"Ben\"]}}}}"
p1=$("$jobq" submit podcast "$text" --owner alice < /dev/null) || bad "submit podcast failed"
d1=$("$jobq" submit digest "$text" < /dev/null) || bad "submit digest failed"
other=$("$jobq" submit other '{}' < /dev/null) || bad "submit other failed"
"$jobq" worker --config pipes.json --workers 2 < /dev/null 2> worker1.err &
worker=$!
checks=$((checks + 1))
"$jobq" wait "$p1" --timeout 120000 < /dev/null > /dev/null 2>&1 ||
  bad "the podcast job $p1 did not succeed: $("$jobq" get "$p1" < /dev/null | head -c 600)"
check_podcast "$p1" pods
checks=$((checks + 1))
if "$jobq" wait "$d1" --timeout 60000 < /dev/null > digest.json 2> /dev/null; then
  python3 -c '
import json, sys
r = json.load(open("digest.json"))["result"]
sys.exit(0 if r["transcript"].startswith("Ana: Welcome back!") and "audioFile" not in r else 1)' ||
    bad "the digest's result: $(head -c 600 digest.json)"
else
  bad "the digest job $d1 did not succeed: $(head -c 600 digest.json)"
fi
# A kind the file does not name is left to other processes.
checks=$((checks + 1))
"$jobq" get "$other" < /dev/null | grep -qF '"state":"queued"' || bad "the worker ran a job of kind other"
grep -qF "jobq: worker: running podcast, digest (2 at a time each) on sqlite:$tmp/q.db" worker1.err ||
  bad "the worker's start line: $(head -c 300 worker1.err)"
# SIGTERM: the worker closes the queue and exits 0.
kill -TERM "$worker"
rc=0
wait "$worker" || rc=$?
worker=
checks=$((checks + 1))
[ "$rc" -eq 0 ] || bad "the worker exited $rc after SIGTERM: $(cat worker1.err)"

# 2. The stages alone (the form of jobq-server's "pipeline" member): the
# kind podcast; a job submitted while the worker runs.
conf plain.json "{\"script\": $T, \"tts\": {\"provider\": \"espeak\"},
  \"upload\": {\"provider\": \"local\", \"dir\": \"plain-pods\"}}"
"$jobq" worker --config plain.json --for 600000 < /dev/null 2> worker2.err &
worker=$!
p2=$("$jobq" submit podcast "$text" < /dev/null) || bad "submit podcast failed"
checks=$((checks + 1))
"$jobq" wait "$p2" --timeout 120000 < /dev/null > /dev/null 2>&1 ||
  bad "the podcast job $p2 did not succeed: $("$jobq" get "$p2" < /dev/null | head -c 600)"
check_podcast "$p2" plain-pods
kill -TERM "$worker"
rc=0
wait "$worker" || rc=$?
worker=
checks=$((checks + 1))
[ "$rc" -eq 0 ] || bad "the second worker exited $rc after SIGTERM: $(cat worker2.err)"

# What the workers did is in the store's stats.
checks=$((checks + 1))
"$jobq" stats --json < /dev/null > stats.json || bad "jobq stats --json failed"
python3 -c '
import json, sys
k = json.load(open("stats.json"))["kinds"]
sys.exit(0 if k["podcast"]["counts"]["succeeded"] == 2 and k["digest"]["counts"]["succeeded"] == 1
         and k["other"]["queued"] == 1 else 1)' || bad "jobq stats --json: $(head -c 800 stats.json)"

echo "$checks checks, $failures failures"
[ "$failures" -eq 0 ]
