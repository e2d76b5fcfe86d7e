"""The dashboard in a real browser: headless Chromium loads jobq-server's
page (GET /) through the DevTools protocol and the checks below read the
rendered DOM while the jobs are in flight. Run by tests/server/dashboard.sh,
which starts the server and the jobs and passes their ids.

  dashboard_check.py CHROMIUM BASE_URL IDS_JSON WORKDIR ARTIFACTS

IDS_JSON: {"admin": key, "owner": [key, owner], "running", "failed", "hook",
"xss", "queued", "ok": [ids], "later"}. Every wait is for a condition, with a
generous ceiling: nothing here depends on how fast the machine is."""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Chromium, CdpError  # noqa: E402

chromium, base, ids_json, workdir, artifacts = sys.argv[1:6]
ids = json.loads(ids_json)
os.makedirs(artifacts, exist_ok=True)
checks = 0


def js(v):
    return json.dumps(v)


def wait(c, what, expr, timeout=30):
    global checks
    v = c.wait(what, expr, timeout)
    checks += 1
    return v


def text(sel):
    return f"(document.querySelector({js(sel)}) || {{}}).textContent"


def submit(key, body):
    """POST /v1/jobs with the administrator's key: the new job's id."""
    r = urllib.request.Request(f"{base}/v1/jobs", data=json.dumps(body).encode(), method="POST",
                               headers={"x-api-key": key, "content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=30) as res:
        return json.load(res)["id"]


def open_job(c, job_id):
    """Clicks the job's row in the list and waits for its detail."""
    wait(c, f"row of {job_id}", f"!!document.querySelector('#jobs-body tr[data-id={js(job_id)}]')")
    c.evaluate(f"document.querySelector('#jobs-body tr[data-id={js(job_id)}]').click()")
    wait(c, f"detail of {job_id}", f"{text('#detail-id')} === {js(job_id)}")


def run(c):
    admin = ids["admin"]
    running = ids["running"]

    # ---- the key in the fragment is taken and removed from the address bar ----
    c.navigate(f"{base}/#key={admin}&job={running}")
    wait(c, "the key left the address bar, the job stayed",
         f"location.hash === {js('#job=' + running)} && !location.href.includes({js(admin)})")
    wait(c, "the key is kept for the tab", f"sessionStorage.getItem('jobq.key') === {js(admin)}")

    # ---- queue depth per kind and state (GET /v1/stats) ----
    def cell(kind, col):
        return text(f'#queue-table tr[data-kind="{kind}"] td[data-col="{col}"]')

    for kind, col, want in [("echo", "running", "1"), ("echo", "queued", "0"),
                            ("echo", "scheduled", "1"), ("echo", "succeeded", str(len(ids["ok"]) + 1)),
                            ("echo", "failed", "1"), ("render", "queued", "2"),
                            ("render", "running", "0")]:
        wait(c, f"queue depth {kind}/{col} = {want}", f"{cell(kind, col)} === {js(want)}")
    wait(c, "the queued card", f"{text('#card-queued .value')} === '2'")
    wait(c, "the running card", f"{text('#card-running .value')} === '1'")

    # ---- the job list, with each job's state ----
    want_states = {running: "running", ids["failed"]: "failed", ids["hook"]: "succeeded",
                   ids["xss"]: "queued", ids["queued"]: "queued", ids["later"]: "queued"}
    for i in ids["ok"]:
        want_states[i] = "succeeded"
    for jid, st in want_states.items():
        wait(c, f"job row {jid} is {st}",
             f"(document.querySelector('#jobs-body tr[data-id={js(jid)}]') || {{dataset: {{}}}}).dataset.state === {js(st)}"
             f" && {text(f'#jobs-body tr[data-id={js(jid)}] .badge')} === {js(st)}")
    wait(c, "one row per job", f"document.querySelectorAll('#jobs-body tr[data-id]').length === {len(want_states)}")

    # ---- the chart: an SVG with lines once two samples are in ----
    wait(c, "the chart's SVG", "!!document.querySelector('#chart svg#chart-svg')")
    wait(c, "two samples drawn as lines",
         "Number(document.querySelector('#chart-svg').dataset.samples) >= 2 && "
         "!!document.querySelector('#chart-svg polyline.line.done') && "
         "!!document.querySelector('#chart-svg polyline.line.failed')", timeout=60)
    wait(c, "nothing finished since the page opened", f"{text('#chart-error-rate b')} === '—'")
    # Four jobs finish while the page samples, one of them failing: the
    # chart's window counts them (the worker runs echo jobs at once).
    extra = [submit(admin, {"kind": "echo", "owner": "dave", "payload": {"ms": 0, "extra": i}})
             for i in range(3)]
    extra.append(submit(admin, {"kind": "echo", "owner": "dave", "payload": {"fail": "bad luck"},
                                "maxAttempts": 1}))
    wait(c, "the window's error rate: 1 of 4", f"{text('#chart-error-rate b')} === '25%'", timeout=60)
    wait(c, "a throughput above zero", f"{text('#card-throughput .value')} !== '0/min'")
    wait(c, "the new jobs are listed", f"document.querySelectorAll('#jobs-body tr[data-id]').length === "
         f"{len(want_states) + len(extra)}")

    # ---- the running job's detail: live progress, cancel, deliveries ----
    wait(c, "the fragment's job is open", f"{text('#detail-id')} === {js(running)}")
    wait(c, "it is running", f"{text('#detail-state .badge')} === 'running'")
    wait(c, "a progress bar", "!!document.querySelector('#detail-progress [role=progressbar]')")
    wait(c, "the payload", f"{text('#detail-payload pre')}.includes('\"ms\": ')")
    wait(c, "a cancel button", "!!document.querySelector('#detail-cancel')")
    wait(c, "the deliveries section", "!!document.querySelector('#detail-deliveries')")
    wait(c, "the attempts section", f"{text('#detail-attempts')}.includes('Attempts')")
    p0 = int(c.evaluate("document.querySelector('#detail-progress').dataset.progress"))
    wait(c, f"the progress moves past {p0}% without a reload",
         f"Number(document.querySelector('#detail-progress').dataset.progress) > {p0}", timeout=60)
    wait(c, "the follow is live", f"{text('#detail-live')}.startsWith('live')")
    wait(c, "its events are listed", "!document.querySelector('#detail-events').hidden && "
         f"{text('#detail-events')}.includes('progress')")
    wait(c, "the bar's width follows",
         "document.querySelector('#detail-progress .fill').style.width === "
         "document.querySelector('#detail-progress').dataset.progress + '%'")
    c.screenshot(os.path.join(artifacts, "dashboard.png"))

    # ---- text from jobs stays text ----
    open_job(c, ids["xss"])
    wait(c, "markup in a payload is shown as text",
         f"{text('#detail-payload pre')}.includes('<img src=x onerror=')")
    wait(c, "and never becomes an element",
         "document.querySelectorAll('img').length === 0 && window.__pwned === undefined")
    wait(c, "a queued job can be cancelled", "!!document.querySelector('#detail-cancel')")

    # ---- a failed job: its error and its attempts ----
    open_job(c, ids["failed"])
    wait(c, "the failed job's error", f"{text('#detail-error')} === 'boom' && "
         "!document.querySelector('#detail-error').hidden")
    first_attempt = text('#detail-attempts tr[data-attempt="1"]')
    wait(c, "its attempt log", f"{first_attempt}.includes('boom')")
    wait(c, "no cancel for a finished job", "!document.querySelector('#detail-cancel')")
    wait(c, "no deliveries for it", "!!document.querySelector('#no-deliveries')")

    # ---- the webhook deliveries of a job that has one ----
    open_job(c, ids["hook"])
    wait(c, "the job's delivery", f"{text('#detail-deliveries [data-delivery]')}.includes('job.succeeded')")
    wait(c, "the receiver's answer", f"{text('#detail-deliveries [data-delivery]')}.includes('HTTP 404')",
         timeout=60)
    wait(c, "the result", f"{text('#detail-result pre')}.includes('\"hook\": true')")

    # ---- filters ----
    c.evaluate("document.querySelector('#f-state').value = 'queued';"
               "document.querySelector('#f-state').dispatchEvent(new Event('change'))")
    wait(c, "state filter", "(() => { const r = [...document.querySelectorAll('#jobs-body tr[data-id]')];"
         " return r.length === 3 && r.every((x) => x.dataset.state === 'queued'); })()")
    c.evaluate("document.querySelector('#f-kind').value = 'render';"
               "document.querySelector('#filters').requestSubmit()")
    wait(c, "kind filter", "(() => { const r = [...document.querySelectorAll('#jobs-body tr[data-id]')];"
         " return r.length === 2 && r.every((x) => x.dataset.kind === 'render'); })()")
    c.evaluate("document.querySelector('#f-clear').click()")
    wait(c, "filters cleared", "document.querySelectorAll('#jobs-body tr[data-id]').length === "
         f"{len(want_states) + len(extra)}")

    # ---- an owner's key: its jobs only, no queue statistics ----
    okey, owner = ids["owner"]
    c.evaluate(f"location.hash = {js('#key=' + okey + '&job=' + running)}")
    wait(c, "the new key is taken", f"sessionStorage.getItem('jobq.key') === {js(okey)} && "
         f"!location.href.includes({js(okey)})")
    wait(c, "statistics need an administrator", f"{text('#queue')}.includes('administrator key')")
    wait(c, "the owner's jobs only", "(() => { const r = [...document.querySelectorAll('#jobs-body tr[data-id]')];"
         f" return r.length > 0 && r.every((x) => x.children[3].textContent === {js(owner)}); }})()")

    # ---- cancel from the page (two clicks), seen through to the end ----
    wait(c, "the owner's running job is open", f"{text('#detail-id')} === {js(running)} && "
         "!!document.querySelector('#detail-cancel')")
    c.evaluate("document.querySelector('#detail-cancel').click()")
    wait(c, "the first click asks again", f"{text('#detail-cancel')}.includes('again')")
    c.evaluate("document.querySelector('#detail-cancel').click()")
    wait(c, "the job ends cancelled", f"{text('#detail-state .badge')} === 'cancelled'", timeout=60)
    wait(c, "and its row says so",
         f"(document.querySelector('#jobs-body tr[data-id={js(running)}]') || {{dataset: {{}}}}).dataset.state === 'cancelled'")

    with open(os.path.join(artifacts, "dashboard.html"), "w") as f:
        f.write(c.evaluate("document.documentElement.outerHTML"))
    problems = c.problems()
    if problems:
        raise CdpError("the page reported errors:\n  " + "\n  ".join(problems))


def main():
    c = Chromium(chromium, workdir)
    try:
        run(c)
    except CdpError as e:
        try:
            c.screenshot(os.path.join(artifacts, "dashboard-failed.png"))
            with open(os.path.join(artifacts, "dashboard-failed.html"), "w") as f:
                f.write(c.evaluate("document.documentElement.outerHTML"))
        except Exception:  # the browser may be what failed
            pass
        print(f"FAIL: {e}", file=sys.stderr)
        for p in c.problems():
            print(f"  page: {p}", file=sys.stderr)
        return 1
    finally:
        c.close()
    print(f"browser: {checks} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
